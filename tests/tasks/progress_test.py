"""Progress of long evaluations: test scoring block by block equals one call, with progress lines."""
import numpy as np

from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.training import progress as progress_lib

PROMPTS = [" It was", "great", " movie review:"]


def test_blocked_test_scoring_equals_one_call_and_prints_progress(tiny_lm):
  model, tok = tiny_lm
  test = data.load_few_shot("sst-2", 0, "test")[:40]
  train = data.load_few_shot("sst-2", 0, "train")[:8]
  scorer = scoring.make_scorer(model, tok, "{sentence_1} {prompt}", (" terrible", " great"))
  lines = []
  silent = ClassificationTask(scorer, train, train, test, calibrate=True)
  shown = ClassificationTask(scorer, train, train, test, calibrate=True, progress=lines.append,
                             eval_block=20)
  want = silent.class_logits(PROMPTS, test)
  got = shown.class_logits(PROMPTS, test, label="test set")
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(shown.accuracy(PROMPTS, "test"), silent.accuracy(PROMPTS, "test"))
  assert lines[0].startswith("test set: 3 prompt(s): 20/40 examples (50%), ETA ")
  assert lines[-1].startswith("test set: 3 prompt(s): 40/40 examples (100%), ETA ")
  # Test blocks are scored once: the scorer does not keep their encoded inputs.
  assert not any(len(key) == 20 for key in getattr(scorer, "_encoded", {}))


def test_progress_line_rate_limits_and_always_prints_the_end():
  lines = []
  line = progress_lib.ProgressLine("eval", lines.append, min_interval=3600)
  for done in range(1, 11):
    line.update(done, 10)
  assert [s.split(" (")[0] for s in lines] == ["eval: 1/10 examples", "eval: 10/10 examples"]
  assert lines[-1].endswith("ETA 00:00:00")
  assert progress_lib.eta_text(10.0, 2, 6) == "00:00:20" and progress_lib.eta_text(1.0, 0, 5) == "?"
