"""Sampling: empirical action frequencies match the policy's probabilities; greedy is the argmax."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.agent import policy
from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import AgentConfig
from tests.ops import references


def _agent(tiny_lm, **kw):
  lm, tok = tiny_lm
  cfg = AgentConfig(prompt_length=1, prompts_per_step=20_000, mlp_hidden=16, **kw)
  return PromptAgent(lm, tok, cfg, source_token="<s>")



def _policy_probs_numpy(agent, state, kind):
  """The policy at the first state, recomputed in NumPy from e_0 (independent of sampling.py)."""
  e0 = np.asarray(agent.greedy(state).states[0, 0], np.float64)
  w = np.asarray(agent.w_lm, np.float64)
  p = state.train.params
  h = np.maximum(e0 @ np.asarray(p["fc1"]["kernel"]) + np.asarray(p["fc1"]["bias"]), 0)
  q = (h @ np.asarray(p["fc2"]["kernel"]) + np.asarray(p["fc2"]["bias"])) @ w.T
  allowed = np.asarray(agent.allowed)
  if agent.cfg.filter_top_k:
    f = e0 @ w.T
    allowed = allowed & (f >= np.sort(f)[-agent.cfg.filter_top_k])
  if agent.cfg.sampling_top_k:
    qa = np.where(allowed, q, -np.inf)
    allowed = allowed & (q >= np.sort(qa)[-agent.cfg.sampling_top_k])
  z = np.where(allowed, q, -np.inf)
  if kind == "softmax":
    e = np.exp(z - z.max())
    return e / e.sum(), q, allowed
  return references.sparsemax(q, mask=allowed) * allowed, q, allowed


def _scaled_state(agent, seed, scale):
  state = agent.init(seed)
  params = jax.tree.map(lambda x: x * scale, state.train.params)
  return state.replace(train=state.train.replace(params=params))


@pytest.mark.parametrize("kind,kw", [
    ("softmax", dict(regularizer="shannon", sampling_top_k=8)),
    ("sparsemax", dict(regularizer="tsallis", sampling_top_k=None, filter_top_k=50)),
])
def test_sampling_frequencies_match_policy(tiny_lm, kind, kw):
  agent = _agent(tiny_lm, **kw)
  # Scale the head so that the policy is neither uniform nor one-hot.
  state = _scaled_state(agent, 0, 3000.0 if kind == "softmax" else 6000.0)
  probs, _, _ = _policy_probs_numpy(agent, state, kind)
  support = np.flatnonzero(probs > 0)
  assert 2 <= len(support) <= 50, len(support)
  _, rollout = agent.sample(state)
  counts = np.bincount(np.asarray(rollout.tokens[:, 0]), minlength=len(probs))
  n = counts.sum()
  assert counts[probs == 0].sum() == 0                      # never outside the support
  expected = probs[support] * n
  chi2 = np.sum((counts[support] - expected) ** 2 / expected)
  # chi-square with len(support)-1 dof: mean dof, sd sqrt(2 dof); 6 sd is a loose, seeded bound.
  dof = len(support) - 1
  assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)


def test_greedy_is_argmax(tiny_lm):
  agent = _agent(tiny_lm, regularizer="tsallis", sampling_top_k=None, filter_top_k=50)
  state = _scaled_state(agent, 1, 1000.0)
  _, q, allowed = _policy_probs_numpy(agent, state, "sparsemax")
  assert int(agent.greedy(state).tokens[0, 0]) == int(np.argmax(np.where(allowed, q, -np.inf)))


def test_special_tokens_never_sampled(tiny_lm):
  agent = _agent(tiny_lm, regularizer="shannon", sampling_top_k=None)
  lm, tok = tiny_lm
  special = sorted(tok.special_ids())
  assert special and not np.asarray(agent.allowed)[special].any()
  state = agent.init(0)
  params = state.train.params
  # Push the special tokens' Q-values far up: they must still never be drawn.
  w = np.asarray(agent.w_lm)
  bias = np.zeros(w.shape[1], np.float32)
  params = {**params, "fc2": {**params["fc2"], "bias": jnp.asarray(bias + 50 * w[special].sum(0))}}
  state = state.replace(train=state.train.replace(params=params))
  _, rollout = agent.sample(state)
  assert not np.isin(np.asarray(rollout.tokens), special).any()


def test_filter_threshold_is_kth_frozen_logit(tiny_lm):
  agent = _agent(tiny_lm)
  e = jax.random.normal(jax.random.PRNGKey(0), (3, agent.dim))
  thr = policy.filter_threshold(e, agent.w_lm, 17)
  f = np.asarray(e) @ np.asarray(agent.w_lm).T
  np.testing.assert_allclose(thr, np.sort(f, -1)[:, -17], rtol=1e-6)
  mask = policy.action_mask(e, agent.w_lm, thr, None)
  assert (np.asarray(mask).sum(-1) >= 17).all()


def test_kth_value_is_not_compiled_as_a_full_sort(tiny_lm):
  """XLA:CPU compiles `top_k(...)[..., -1]` as a sort of every row; the filter and the sampling
  top-k read the min of the top k instead (same value)."""
  agent = _agent(tiny_lm)
  e = jax.random.normal(jax.random.PRNGKey(1), (3, agent.dim))
  hlo = jax.jit(lambda x: policy.filter_threshold(x, agent.w_lm, 17)).lower(e).compile().as_text()
  assert " sort(" not in hlo
  from hpprompt.agent import sampling  # noqa: PLC0415
  cfg = AgentConfig(sampling_top_k=5)
  q = jax.random.normal(jax.random.PRNGKey(2), (3, 40))
  fn = jax.jit(lambda x: sampling._sampling_logp(x, None, cfg))
  assert " sort(" not in fn.lower(q).compile().as_text()
  logp = np.asarray(fn(q))
  np.testing.assert_array_equal(np.isfinite(logp).sum(-1), 5)        # still exactly the top 5
  np.testing.assert_array_equal(np.isfinite(logp), np.asarray(q) >= np.sort(q, -1)[:, -5:-4])
