"""Learner, replay buffer, policy head and reward shaping against NumPy re-computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.agent import learner
from hpprompt.agent import policy
from hpprompt.agent import replay
from hpprompt.agent.config import AgentConfig
from hpprompt.agent.config import get_preset
from tests.ops import references

V, D, L, N = 40, 8, 3, 6


def _np_q(params, e, w, bias=0.0):
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
  h = np.maximum(e @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0)
  return (h @ p["fc2"]["kernel"] + p["fc2"]["bias"]) @ w.T + bias


def _batch(rng, filter_k=None):
  e = rng.normal(size=(N, L, D)).astype(np.float32)
  w = rng.normal(size=(V, D)).astype(np.float32)
  thr = np.full((N, L), -np.inf, np.float32)
  if filter_k:
    # Midway between the k-th and (k+1)-th frozen logits: no float32/float64 tie at the boundary.
    f = np.sort(e.astype(np.float64) @ w.T.astype(np.float64), -1)
    thr = ((f[..., -filter_k] + f[..., -filter_k - 1]) / 2).astype(np.float32)
  a = rng.integers(0, V, size=(N, L)).astype(np.int32)
  if filter_k:   # actions must be inside the filter
    f = e @ w.T
    a = np.argmax(np.where(f >= thr[..., None], rng.random(f.shape), -1), -1).astype(np.int32)
  r = rng.normal(size=N).astype(np.float32)
  return learner.Batch(jnp.asarray(a), jnp.asarray(e), jnp.asarray(thr), jnp.asarray(r)), w


def _random_params(key, scale):
  params = policy.init_head(key, D, 16)
  return jax.tree.map(lambda x: x + scale * jax.random.normal(key, x.shape), params)


@pytest.mark.parametrize("preset,variant,filter_k", [
    ("rlprompt", "v2_v3", None), ("pin", "v1", 10), ("pin", "v2_v3", 10), ("rlprompt", "v3", 10),
    ("pin-td", "td", 10)])
def test_loss_matches_numpy(preset, variant, filter_k):
  rng = np.random.default_rng(0)
  batch, w = _batch(rng, filter_k)
  cfg = get_preset(preset, loss=variant, filter_top_k=filter_k, mlp_hidden=16, logit_bias=-0.5,
                   discount=0.9)
  params = _random_params(jax.random.PRNGKey(1), 0.3)
  target = _random_params(jax.random.PRNGKey(2), 0.3)
  allowed = np.ones(V, bool)
  allowed[:3] = False
  loss, _ = learner.loss_fn(params, target, batch, jnp.asarray(w), jnp.asarray(allowed), cfg)
  e = np.asarray(batch.states, np.float64)
  q, tq = _np_q(params, e, w, -0.5), _np_q(target, e, w, -0.5)
  mask = np.broadcast_to(allowed, q.shape).copy()
  if filter_k:
    mask &= (e @ w.T.astype(np.float64)) >= np.asarray(batch.thresholds, np.float64)[..., None]
  value = references.spmax if cfg.regularizer == "tsallis" else references.logsumexp
  want = np.mean([references.soft_q_loss(
      variant, q[n], np.asarray(batch.tokens[n]), float(batch.rewards[n]), tq[n], value,
      discount=0.9, mask=mask[n]) for n in range(N)])
  np.testing.assert_allclose(float(loss), want, rtol=2e-4)
  if filter_k is None:
    # Tokens that are never sampled (special tokens: `allowed` False) are left out of V and V' too:
    # with them in the log-sum-exp the loss differs by more than the tolerance above.
    mask[..., :3] = True
    with_specials = np.mean([references.soft_q_loss(
        variant, q[n], np.asarray(batch.tokens[n]), float(batch.rewards[n]), tq[n], value,
        discount=0.9, mask=mask[n]) for n in range(N)])
    assert abs(with_specials - want) > 5e-4 * abs(want)


def test_train_step_polyak_then_adam():
  rng = np.random.default_rng(1)
  batch, w = _batch(rng)
  cfg = AgentConfig(mlp_hidden=16, polyak_rate=0.25, learning_rate=1e-2)
  state = learner.init_state(jax.random.PRNGKey(0), D, cfg)
  state = state.replace(params=_random_params(jax.random.PRNGKey(3), 0.3))
  # train_step donates the state: keep host copies.
  old_params = jax.tree.map(np.asarray, state.params)
  old_target = jax.tree.map(np.asarray, state.target_params)
  want_target = jax.tree.map(lambda p, t: 0.75 * t + 0.25 * p, old_params, old_target)
  grads = jax.grad(lambda p: learner.loss_fn(p, want_target, batch, jnp.asarray(w), None,
                                             cfg)[0])(old_params)
  step = learner.make_train_step(cfg)
  new, metrics = step(state, batch, jnp.asarray(w), None)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.target_params,
               want_target)
  # First Adam step moves each parameter by ~lr * sign(grad) (clipping does not change signs).
  moved = jax.tree.map(lambda n, o: np.asarray(n - o), new.params, old_params)
  for m, g in zip(jax.tree.leaves(moved), jax.tree.leaves(grads)):
    big = np.abs(np.asarray(g)) > 1e-6
    np.testing.assert_allclose(m[big], -1e-2 * np.sign(np.asarray(g)[big]), rtol=1e-3)
  assert int(new.step) == 1 and np.isfinite(metrics["loss"])


def test_head_init_matches_rlprompt():
  params = policy.init_head(jax.random.PRNGKey(0), 768, 2048)
  k1 = np.asarray(params["fc1"]["kernel"])
  limit = 1e-4 * np.sqrt(6 / (768 + 2048))
  assert k1.shape == (768, 2048) and np.abs(k1).max() <= limit
  assert np.abs(k1).max() > 0.9 * limit                  # uniform over the whole range
  assert np.all(np.asarray(params["fc2"]["bias"]) == -1e-4)
  n = sum(x.size for x in jax.tree.leaves(params))
  assert n == 3_148_544                                  # RLPrompt's MLP size (methods.md §1.1)


def test_shape_rewards():
  raw = jnp.asarray([1.0, 2.0, 4.0, -1.0])
  z = (np.asarray(raw) - np.mean(raw)) / (np.std(raw) + 1e-4)
  np.testing.assert_allclose(learner.shape_rewards(raw, AgentConfig()), 5 * z, rtol=1e-5)
  np.testing.assert_allclose(learner.shape_rewards(raw, get_preset("pin")), z, rtol=1e-5)


def test_replay_buffer_wraps_and_samples_stored_rows():
  buf = replay.ReplayBuffer.create(capacity=5, length=2, dim=3)
  for i in range(3):                                    # 3 x 2 rows into 5 slots: wraps once
    rows = jnp.arange(2) + 2 * i
    batch = learner.Batch(jnp.stack([rows, rows], 1).astype(jnp.int32),
                          jnp.ones((2, 2, 3)) * rows[:, None, None], jnp.zeros((2, 2)),
                          rows.astype(jnp.float32))
    buf = replay.add(buf, batch)
  assert int(buf.size) == 5 and int(buf.pointer) == 1
  np.testing.assert_array_equal(np.asarray(buf.data.rewards), [5, 1, 2, 3, 4])
  sample = replay.sample(buf, jax.random.PRNGKey(0), 4000)
  counts = np.bincount(np.asarray(sample.rewards).astype(int), minlength=6)
  assert counts[0] == 0 and np.all(np.abs(counts[1:] - 800) < 5 * np.sqrt(800))
  np.testing.assert_array_equal(np.asarray(sample.tokens[:, 0]), np.asarray(sample.rewards))


def test_config_errors():
  with pytest.raises(ValueError, match="regularizer"):
    AgentConfig(regularizer="renyi")
  with pytest.raises(ValueError, match="loss"):
    AgentConfig(loss="v4")
  with pytest.raises(ValueError, match="replay_batch"):
    AgentConfig(replay=True, replay_batch=10, replay_capacity=5)
  with pytest.raises(ValueError, match="unknown preset"):
    get_preset("ppo")
