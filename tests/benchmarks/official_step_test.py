"""benchmarks/official_step.py (the torch mirror of the official step) against hpprompt's own code.

Two independent implementations of the same formulas (torch/transformers there, JAX here): the
reward logits on a tiny RoBERTa, the gap reward and z-score, PIN's sparsemax threshold, and the
soft-Q losses of both rows; then one step of each row runs on tiny models.
"""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from hpprompt.models import hub
from hpprompt.ops.regularizers import shannon_regularizer
from hpprompt.tasks import data, scoring
from hpprompt.tasks.classification import gap_rewards

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import official_step  # noqa: E402

VERBALIZERS = (" terrible", " great")


def test_reward_logits_match_hpprompt_scorer(tiny_roberta_dir):
  """One batch per prompt, padded, full head, read at <mask>: hpprompt's packed scorer's logits."""
  reward = official_step.OfficialReward(tiny_roberta_dir)
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  scorer = scoring.make_scorer(model, tok, official_step.TEMPLATE, VERBALIZERS)
  train = data.load_few_shot("sst-2", 0, "train")
  prompts = [" It was", " great movie overall", ""]
  ours = scorer.class_logits(prompts, train)                                # [N, P, C]
  theirs = np.stack([reward.class_logits([e.text for e in train], p).numpy() for p in prompts], 1)
  np.testing.assert_allclose(theirs, ours, atol=1e-5)
  assert len(reward.batches) == 3 and all(len(real) == len(train) for _, real in reward.batches)
  assert all(max(real) == w for w, real in reward.batches)     # padded to each batch's longest


def test_gap_reward_and_zscore_match_hpprompt():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(32, 6, 2)).astype(np.float32)
  labels = rng.integers(0, 2, 32)
  theirs = torch.stack([official_step.gap_reward(torch.softmax(torch.tensor(logits[:, p]), -1),
                                                 torch.tensor(labels)) for p in range(6)])
  ours, _ = gap_rewards(jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(theirs.numpy(), np.asarray(ours), rtol=1e-5, atol=1e-4)
  values = theirs.numpy()
  z = (values - np.mean(values)) / (np.std(values) + 1e-4)
  np.testing.assert_allclose(z, np.asarray(ops.zscore(jnp.asarray(values))), rtol=1e-5, atol=1e-5)


def test_sparsemax_threshold_matches_hpprompt():
  z = torch.tensor(np.random.default_rng(1).normal(0, 3, (4, 3, 500)).astype(np.float32))
  tau, support, _ = official_step.sparsemax_tau(z)
  ours = jax.vmap(jax.vmap(ops.sparsemax))(jnp.asarray(z.numpy()))
  np.testing.assert_allclose(torch.clamp(z - tau[..., None], min=0).numpy(), np.asarray(ours),
                             atol=1e-5)
  assert (support.sum(-1).numpy() == (np.asarray(ours) > 0).sum(-1)).all()


@pytest.mark.parametrize("variant", ["v2_v3", "v1"])
def test_losses_match_hpprompt(variant):
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(8, 5, 64)).astype(np.float32)
  target = rng.normal(size=(8, 5, 64)).astype(np.float32)
  actions = rng.integers(0, 64, (8, 5))
  rewards = rng.normal(size=8).astype(np.float32)
  t = [torch.tensor(x) for x in (logits, target, actions, rewards)]
  if variant == "v1":
    mask = torch.ones_like(t[0], dtype=torch.bool)
    theirs = official_step.sparse_ql_v1_loss(t[0], mask, t[1], mask, t[2], t[3])
  else:
    theirs = official_step.sql_v2_v3_loss(*t)
  per_prompt = jax.vmap(lambda q, a, r, tq: ops.soft_q_loss(
      variant, q, a, r, tq, value_fn=shannon_regularizer().value))
  ours = per_prompt(logits, actions, rewards, target).mean()
  np.testing.assert_allclose(theirs.item(), float(ours), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("row", ["rlprompt", "pin"])
def test_one_step_of_each_row(row, tiny_gpt2_dir, tiny_roberta_dir):
  """Sampling, the reward of 16 prompts, and a learner update that moves the MLP."""
  step = official_step.OfficialStep(row, tiny_gpt2_dir, tiny_roberta_dir)
  before = [p.detach().clone() for p in step.policy.mlp.parameters()]
  times = step.step(scored=2)
  assert len(times) == 3 and all(t > 0 for t in times)
  assert len(step.reward.batches) == 2
  assert any((a != b.detach()).any() for a, b in zip(before, step.policy.mlp.parameters()))
  if row == "pin":
    assert step.size >= 256
