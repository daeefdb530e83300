"""Every method lowers its training loss on a keyword task with a tiny random task LM."""
import numpy as np
import pytest

from hpprompt import gradient
from hpprompt.tasks import embedding_task

STEPS = 30


@pytest.mark.parametrize("name, cfg", [
    ("soft", gradient.SoftPromptConfig(learning_rate=0.1)),
    ("infoprompt", gradient.InfoPromptConfig(learning_rate=0.1)),
    ("infoprompt", gradient.InfoPromptConfig(learning_rate=0.1, variational_head=True,
                                             prompt_generator=True, logp_floor=None)),
    ("pez", gradient.PEZConfig()),
])
def test_training_loss_goes_down(steep_lm, keyword_examples, name, cfg):
  model, tok = steep_lm
  task = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", (" terrible", " great"))
  method = gradient.METHODS[name](task, cfg)
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
