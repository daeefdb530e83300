"""The starting prompt's warm-up (hpprompt/agent/warm_start.py) against a PyTorch reference: the
behaviour-cloning loss and its gradient, and the whole Adam loop with its stop rule (sparsemax by
sorting, top-k softmax) on random heads, states and masks."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.agent import policy
from hpprompt.agent import warm_start
from hpprompt.agent.config import get_preset

torch = pytest.importorskip("torch")
D, H, V, L = 16, 24, 30, 3


def _problem(seed: int, scale: float = 1e-4):
  rng = np.random.default_rng(seed)
  params = policy.init_head(jax.random.PRNGKey(seed), D, H)
  params = jax.tree.map(lambda x: x * (scale / 1e-4), params)
  states = rng.normal(size=(L, D)).astype(np.float32)
  w_lm = rng.normal(size=(V, D)).astype(np.float32)
  tokens = rng.integers(0, V, L).astype(np.int32)
  masks = rng.random((L, V)) < 0.6
  masks[np.arange(L), tokens] = True
  return params, states, tokens, masks, w_lm


def _torch_head(params):
  return {k: {n: torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=True)
              for n, v in layer.items()} for k, layer in params.items()}


def _torch_q(p, states, w_lm, bias):
  h = torch.relu(torch.as_tensor(states, dtype=torch.float64) @ p["fc1"]["kernel"]
                 + p["fc1"]["bias"])
  w = torch.as_tensor(w_lm, dtype=torch.float64)
  return (h @ p["fc2"]["kernel"] + p["fc2"]["bias"]) @ w.T + bias


def _torch_loss(p, states, tokens, masks, w_lm, weights, temperature, bias):
  q = _torch_q(p, states, w_lm, bias)
  taken = torch.arange(L), torch.as_tensor(tokens, dtype=torch.long)
  logp = torch.log_softmax((q / temperature).masked_fill(~torch.as_tensor(masks), float("-inf")),
                           -1)[taken]
  return (-torch.as_tensor(weights, dtype=torch.float64) * logp + q[taken] ** 2).mean()


def _sparsemax(z):
  """Sparsemax by sorting (Martins & Astudillo 2016), -inf entries excluded."""
  finite = np.isfinite(z)
  zs = np.sort(z[finite])[::-1]
  k = np.arange(1, len(zs) + 1)
  support = 1 + k * zs > np.cumsum(zs)
  tau = (np.cumsum(zs)[support][-1] - 1) / k[support][-1]
  return np.where(finite, np.maximum(z - tau, 0), 0)


def _behaviour_probs(q, masks, tokens, cfg):
  out = []
  for t in range(L):
    z = np.where(masks[t], q[t], -np.inf) / cfg.temperature
    if cfg.regularizer == "tsallis":
      p = _sparsemax(z)
    else:
      if cfg.sampling_top_k is not None:
        kth = np.sort(z)[::-1][cfg.sampling_top_k - 1]
        z = np.where(z >= kth, z, -np.inf)
      p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    out.append(p[tokens[t]])
  return np.array(out)


def _cloned(q, masks, tokens, cfg):
  probs = _behaviour_probs(q, masks, tokens, cfg)
  masked = np.where(masks, q, -np.inf)
  others = masked.copy()
  others[np.arange(L), tokens] = -np.inf
  greedy = masked[np.arange(L), tokens] > others.max(-1)
  return greedy & (probs >= cfg.init_prob), probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_and_gradient_match_pytorch(seed):
  params, states, tokens, masks, w_lm = _problem(seed, scale=0.3)
  weights = np.array([1.0, 0.0, 1.0], np.float32)
  loss, grads = jax.value_and_grad(warm_start.bc_loss)(params, states, tokens, masks, w_lm,
                                                       weights, 0.7, 0.1)
  p = _torch_head(params)
  ref = _torch_loss(p, states, tokens, masks, w_lm, weights, 0.7, 0.1)
  ref.backward()
  np.testing.assert_allclose(loss, ref.item(), rtol=1e-5)
  for layer in p:
    for name in p[layer]:
      np.testing.assert_allclose(grads[layer][name], p[layer][name].grad.numpy(), rtol=1e-4,
                                 atol=1e-7)


@pytest.mark.parametrize("preset,seed", [("pin", 0), ("pin", 1), ("rlprompt", 2)])
def test_warm_start_matches_a_pytorch_adam_loop(preset, seed):
  """The same Adam steps on the masked loss, stopping at the first head that is greedy on every
  token and samples each with probability >= init_prob."""
  cfg = dataclasses.replace(get_preset(preset), prompt_length=L, mlp_hidden=H,
                            sampling_top_k=8 if preset == "rlprompt" else None, init_prob=0.6)
  params, states, tokens, masks, w_lm = _problem(seed)
  lr = 1e-2
  got, steps, done = warm_start.warm_start(params, states, tokens, masks, w_lm, cfg,
                                           max_steps=500, learning_rate=lr)
  p = _torch_head(params)
  leaves = [p[k][n] for k in p for n in p[k]]
  opt = torch.optim.Adam(leaves, lr=lr, betas=(0.9, 0.999), eps=1e-8)
  ref_steps = 0
  while ref_steps < 500:
    with torch.no_grad():
      ok, _ = _cloned(_torch_q(p, states, w_lm, cfg.logit_bias).numpy(), masks, tokens, cfg)
    if ok.all():
      break
    opt.zero_grad()
    _torch_loss(p, states, tokens, masks, w_lm, 1.0 - ok, cfg.temperature,
                cfg.logit_bias).backward()
    opt.step()
    ref_steps += 1
  assert bool(done) and 0 < int(steps) == ref_steps < 500
  for layer in p:
    for name in p[layer]:
      np.testing.assert_allclose(got[layer][name], p[layer][name].detach().numpy(), rtol=2e-3,
                                 atol=1e-6)
  q = np.asarray(policy.q_values(got, jnp.asarray(states), jnp.asarray(w_lm), cfg.logit_bias))
  ok, probs = _cloned(q, masks, tokens, cfg)
  assert ok.all()
  np.testing.assert_allclose(warm_start.cloned(got, states, tokens, masks, w_lm, cfg)[1], probs,
                             rtol=1e-4, atol=1e-6)


def test_gives_up_after_max_steps():
  cfg = dataclasses.replace(get_preset("pin"), prompt_length=L, mlp_hidden=H, init_prob=0.99)
  params, states, tokens, masks, w_lm = _problem(3)
  _, steps, done = warm_start.warm_start(params, states, tokens, masks, w_lm, cfg, max_steps=2,
                                         learning_rate=1e-6)
  assert int(steps) == 2 and not bool(done)
