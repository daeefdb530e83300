"""Selection by validation reward, RLPrompt's truncation, verbalizer spellings, InfoPrompt's
schedule — each against an independent reference (PyTorch / transformers / NumPy)."""
import numpy as np
import pytest
from absl import flags

from hpprompt.gradient import soft_prompt
from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks import verbalizers
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.tasks.data import Example
from hpprompt.tasks.templates import Template
from hpprompt.tasks.templates import TemplateError
from tests.ops import references
from tests.tasks.classification_test import PROMPTS
from tests.tasks.classification_test import VERBALIZERS
from tests.tasks.classification_test import _torch_class_logits

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_selection_by_mean_validation_reward(tiny_gpt2_dir):
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  dev = data.load_few_shot("sst-2", 0, "dev")[:10]
  scorer = scoring.make_scorer(model, tok, "{sentence_1} {prompt}", VERBALIZERS)
  task = ClassificationTask(scorer, dev, dev, selection="reward")
  assert task.validation_metric == "dev_reward"
  texts = [Template("{sentence_1} {prompt}", False).render(e.text, p) for e in dev for p in PROMPTS]
  logits = _torch_class_logits(tiny_gpt2_dir, texts, False).reshape(len(dev), len(PROMPTS), 2)
  labels = np.asarray([e.label for e in dev])
  want = [references.gap_reward_batch(logits[:, j], labels)[0].mean() for j in range(len(PROMPTS))]
  np.testing.assert_allclose(task.validate(PROMPTS), want, rtol=1e-4, atol=1e-3)
  acc_task = ClassificationTask(scorer, dev, dev)
  assert acc_task.validation_metric == "dev_acc"
  np.testing.assert_allclose(acc_task.validate(PROMPTS), (np.argmax(logits, -1) == labels[:, None])
                             .mean(0))
  with pytest.raises(ValueError, match="selection"):
    ClassificationTask(scorer, dev, dev, selection="loss")


# ---- truncation of over-long masked-LM inputs (RLPrompt: right in training, left in evaluation)

LONG = Example(" ".join(["the movie was a long and boring one"] * 8), 1)
MAX = 24


def _hf_ids(model_dir, text, side):
  tok = transformers.PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json",
                                             truncation_side=side)
  return tok(text, truncation=True, max_length=MAX)["input_ids"]


@pytest.mark.parametrize("template, side", [("{sentence_1} {prompt} <mask> .", "left"),
                                            ("<mask> {prompt} {sentence_1}", "right")])
def test_truncation_matches_transformers(tiny_roberta_dir, template, side):
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  scorer = scoring.FullScorer(model, tok, Template(template, True), VERBALIZERS, max_length=MAX)
  with pytest.raises(TemplateError, match="longer than"):
    scorer.class_logits([" It was"], [LONG])
  text = Template(template, True).render(LONG.text, " It was")
  want_ids = _hf_ids(tiny_roberta_dir, text, side)
  got_ids = scoring.truncate(tok.encode_batch([text], add_special_tokens=True), MAX, side, 1, 1)
  assert got_ids == [want_ids] and len(want_ids) == MAX
  scorer.truncation_side = side
  got = scorer.class_logits([" It was"], [LONG])[0, 0]
  torch_model = transformers.RobertaForMaskedLM.from_pretrained(tiny_roberta_dir).eval()
  with torch.no_grad():
    logits = torch_model(torch.tensor([want_ids])).logits[0].numpy()
  verb = [tok.encode(v)[0] for v in VERBALIZERS]
  np.testing.assert_allclose(got, logits[want_ids.index(tok.token_to_id("<mask>")), verb],
                             rtol=1e-4, atol=1e-4)


def test_right_truncation_cutting_the_mask_is_named(tiny_roberta_dir):
  """RLPrompt's training truncation drops a trailing <mask> (its code would then fail too)."""
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  scorer = scoring.FullScorer(model, tok, Template("{sentence_1} {prompt} <mask> .", True),
                              VERBALIZERS, max_length=MAX, truncation_side="right")
  with pytest.raises(TemplateError, match="after right truncation"):
    scorer.class_logits([" It was"], [LONG])


def test_task_truncates_training_right_and_evaluation_left(tiny_roberta_dir):
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  scorer = scoring.FullScorer(model, tok, Template("<mask> {prompt} {sentence_1}", True),
                              VERBALIZERS, max_length=MAX)
  task = ClassificationTask(scorer, [LONG], [LONG], truncate=True)
  task.rewards([" It was"])
  assert scorer.truncation_side == "right"
  with pytest.raises(TemplateError, match="after left truncation"):   # <mask> first: cut off
    task.validate([" It was"])


# ---- verbalizer spellings ------------------------------------------------------------------------

def test_verbalizer_flag_spellings_keep_leading_spaces():
  fv = flags.FlagValues()
  flags.DEFINE_list("verbalizers", None, "", flag_values=fv)
  fv(["prog", "--verbalizers=Ġbad, ' good', okay,great"])       # absl strips ' okay' to 'okay'
  assert verbalizers.parse(fv.verbalizers) == (" bad", " good", "okay", "great")
  assert verbalizers.parse(["▁bad", '" bad"']) == (" bad", " bad")   # (absl eats double quotes)
  with pytest.raises(ValueError, match="empty"):
    verbalizers.parse(["''"])


def test_describe_names_the_scored_tokens(tiny_lm):
  model, tok = tiny_lm
  scorer = scoring.make_scorer(model, tok, "{sentence_1} {prompt}", VERBALIZERS)
  ids = [tok.encode(v)[0] for v in VERBALIZERS]
  assert verbalizers.describe(scorer) == f"0 'Ġterrible' (id {ids[0]}), 1 'Ġgreat' (id {ids[1]})"


# ---- InfoPrompt's learning-rate schedule ---------------------------------------------------------

@pytest.mark.parametrize("total, decay", [(50, True), (120, True), (40, False)])
def test_warmup_linear_decay_matches_transformers(total, decay):
  cfg = soft_prompt.SoftPromptConfig(learning_rate=1e-3, warmup_fraction=0.06, linear_decay=decay,
                                     schedule_steps=total)
  schedule = soft_prompt.learning_rate_schedule(cfg)
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.AdamW([param], lr=1e-3)
  make = (transformers.get_linear_schedule_with_warmup if decay
          else transformers.get_constant_schedule_with_warmup)
  args = (opt, int(0.06 * total)) + ((total,) if decay else ())
  sched = make(*args)
  want = []
  for _ in range(total):
    want.append(opt.param_groups[0]["lr"])          # the lr of this update
    opt.step()
    sched.step()
  np.testing.assert_allclose([float(schedule(n)) for n in range(total)], want, rtol=1e-5,
                             atol=1e-9)
