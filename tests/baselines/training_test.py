"""Every method lowers its training loss on a keyword task with a tiny random task LM."""
import numpy as np
import pytest

from hpprompt import baselines

STEPS = 30


@pytest.mark.parametrize("name, cfg", [
    ("soft", baselines.SoftPromptConfig(learning_rate=0.1)),
    ("infoprompt", baselines.InfoPromptConfig(learning_rate=0.1)),
    ("infoprompt", baselines.InfoPromptConfig(learning_rate=0.1, variational_head=True,
                                              prompt_generator=True, logp_floor=None)),
    ("pez", baselines.PEZConfig()),
])
def test_training_loss_goes_down(steep_lm, keyword_examples, name, cfg):
  model, tok = steep_lm
  task = baselines.EmbeddingTask(model, tok, "{sentence_1} {prompt}", (" terrible", " great"))
  method = baselines.METHODS[name](task, cfg)
  state = method.init(0)
  batch = task.encode(keyword_examples, cfg.prompt_length, null=method.needs_null)
  losses, accs = [], []
  for _ in range(STEPS):
    state, metrics = method.train_step(state, batch)
    losses.append(float(metrics.get("task_loss", metrics["loss"])))
    accs.append(float(metrics["train_acc"]))
  assert all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.75 * losses[0], losses
  assert max(accs[-5:]) > accs[0], accs
  assert int(state.step) == STEPS
