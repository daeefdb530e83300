"""jit(vmap(f)) equals an unjitted per-example loop, and a batch sharded over 4 CPU devices equals
one device, for sparsemax, spmax and the v2_v3 soft-Q loss."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from hpprompt import ops

B, T, V = 8, 3, 300
TOP_K = 16


def _logits(seed):
  """Rows with small and large supports (> TOP_K: the Michelot fallback) and a mask."""
  rng = np.random.default_rng(seed)
  scale = np.array([3.0, 0.01, 1.0, 1e-4, 0.3, 2.0, 0.05, 1.0], np.float32)[:, None]
  z = (rng.normal(size=(B, V)) * scale).astype(np.float32)
  mask = rng.random((B, V)) < 0.8
  mask[:, 0] = True
  return jnp.asarray(z), jnp.asarray(mask)


def _policy_and_value(z, m):
  return ops.sparsemax(z, m, top_k=TOP_K), ops.spmax(z, m, top_k=TOP_K)


def _trajectories(seed):
  rng = np.random.default_rng(seed)
  q = jnp.asarray(rng.normal(size=(B, T, V)) * np.linspace(0.01, 3, B)[:, None, None], jnp.float32)
  tq = q + jnp.asarray(rng.normal(size=q.shape), jnp.float32)
  a = jnp.asarray(rng.integers(0, V, size=(B, T)), jnp.int32)
  r = jnp.asarray(rng.normal(size=B), jnp.float32)
  length = jnp.asarray([T, 2, 1, T, 2, T, T, 1], jnp.int32)
  return q, a, r, tq, length


def _loss(q, a, r, tq, length):
  value_fn = ops.tsallis_regularizer(0.5, top_k=TOP_K).value
  return ops.soft_q_loss("v2_v3", q, a, r, tq, value_fn=value_fn, discount=0.9, length=length)


_batched = jax.jit(jax.vmap(_policy_and_value))
_batched_loss = jax.jit(jax.vmap(_loss))


def test_jit_vmap_equals_unjitted_loop():
  z, mask = _logits(0)
  p, value = _batched(z, mask)
  z, mask = np.asarray(z), np.asarray(mask)
  with jax.disable_jit():                   # Python while loop, one example at a time
    for i in range(B):
      p_i, v_i = _policy_and_value(z[i], mask[i])
      np.testing.assert_allclose(p[i], p_i, atol=1e-6, err_msg=f"row {i}")
      np.testing.assert_allclose(value[i], v_i, rtol=1e-6, atol=1e-6, err_msg=f"row {i}")


def test_vmap_of_loss_equals_loop():
  """The loss one trajectory at a time (jitted: without jit it takes ~20 s on CPU)."""
  traj = _trajectories(1)
  losses = _batched_loss(*traj)
  traj = [np.asarray(x) for x in traj]
  one = jax.jit(_loss)
  for i in range(B):
    np.testing.assert_allclose(losses[i], one(*(x[i] for x in traj)), rtol=1e-5, atol=1e-6)


def test_sharded_batch_equals_one_device():
  assert jax.device_count() == 4
  mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharding = NamedSharding(mesh, P("data"))
  z, mask = _logits(2)
  traj = _trajectories(3)
  p1, v1 = _batched(z, mask)
  l1 = _batched_loss(*traj)

  zs, ms = jax.device_put((z, mask), sharding)
  trajs = jax.device_put(traj, sharding)
  assert len(zs.sharding.device_set) == 4
  p4, v4 = _batched(zs, ms)
  l4 = _batched_loss(*trajs)
  assert p4.sharding.is_equivalent_to(sharding, 2) and len(p4.addressable_shards) == 4
  assert l4.sharding.is_equivalent_to(sharding, 1)
  np.testing.assert_allclose(p4, p1, atol=1e-7)
  np.testing.assert_allclose(v4, v1, rtol=1e-6)
  np.testing.assert_allclose(l4, l1, rtol=1e-6)
