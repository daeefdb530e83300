"""A synthetic bandit with a known best prompt: both methods raise the reward; PIN finds the best.

The reward of a 2-token prompt is the mean of a fixed per-token table; one token is worth far more
than the rest, so the best prompt repeats it. The policy is the tiny random GPT-2 with the full agent
(sampling, shaping, learner; PIN with its ignorable-token filter and replay buffer).
"""
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import get_preset

STEPS = 120


def _best_token(agent, lm, k):
  """A token inside PIN's top-k filter at s_0 and at s_1 = (source, token): reachable by PIN."""
  e0 = lm(jnp.asarray([[agent.source_id]])).hidden[0, -1]
  f0 = np.asarray(e0 @ agent.w_lm.T)
  allowed = np.asarray(agent.allowed)
  for t in np.argsort(-f0)[:k]:
    if not allowed[t]:
      continue
    e1 = lm(jnp.asarray([[agent.source_id, int(t)]])).hidden[0, -1]
    f1 = np.asarray(e1 @ agent.w_lm.T)
    if f1[t] >= np.sort(f1)[-k] and f0[t] < np.sort(f0)[-k // 2]:   # not the LM's obvious choice
      return int(t)
  raise AssertionError("no reachable token")


def _run(agent, table, seed=0):
  state = agent.init(seed)
  rewards, greedy = [], []
  for _ in range(STEPS):
    state, rollout = agent.sample(state)
    raw = table[np.asarray(rollout.tokens)].mean(1)
    state, _ = agent.learn(state, rollout, raw)
    rewards.append(raw.mean())
    greedy.append(tuple(np.asarray(agent.greedy(state).tokens[0])))
  return np.asarray(rewards), greedy


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rlprompt", "pin"])
def test_bandit(tiny_lm, method):
  lm, tok = tiny_lm
  k = 64
  overrides = dict(prompt_length=2, prompts_per_step=16, mlp_hidden=64, learning_rate=1e-2)
  if method == "pin":
    overrides.update(filter_top_k=k, replay_batch=32, replay_capacity=1024)
  else:
    overrides.update(sampling_top_k=k)
  agent = PromptAgent(lm, tok, get_preset(method, **overrides), source_token="<s>")
  best = _best_token(agent, lm, k)
  rng = np.random.default_rng(0)
  table = rng.uniform(0.0, 1.0, size=agent.w_lm.shape[0])
  table[best] = 3.0
  rewards, greedy = _run(agent, table)
  assert rewards[-20:].mean() > rewards[:20].mean() + 0.2, (rewards[:20].mean(), rewards[-20:].mean())
  if method == "pin":
    assert (best, best) in greedy, f"PIN never reached the best prompt {best} in {STEPS} steps"
    first = greedy.index((best, best))
    assert greedy[-1] == (best, best), (first, greedy[-5:])
