"""info_nce against NumPy: mask, temperature, floor and its zero gradient."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref

K = 7


@functools.partial(jax.jit, static_argnames=("temperature", "floor"))
def _info_nce(pos, negs, mask, temperature, floor):
  loss = lambda p, n, m: ops.info_nce(p, n, m, temperature=temperature, logp_floor=floor)
  return jax.vmap(jax.value_and_grad(loss, argnums=(0, 1)))(pos, negs, mask)


def _inputs(seed, n=8):
  rng = np.random.default_rng(seed)
  pos = (rng.normal(size=n) * 3).astype(np.float32)
  negs = (rng.normal(size=(n, K)) * 3).astype(np.float32)
  mask = rng.random((n, K)) < 0.7
  mask[0] = True
  mask[1] = False                                                   # no negatives: loss 0
  return pos, negs, mask


@pytest.mark.parametrize("temperature, floor", [(1.0, None), (0.5, None), (2.0, -2.0)])
def test_matches_numpy(temperature, floor):
  pos, negs, mask = _inputs(0)
  loss, (g_pos, g_negs) = _info_nce(pos, negs, mask, temperature, floor)
  chex.assert_shape([loss, g_pos, g_negs], [(8,), (8,), (8, K)])
  for i in range(8):
    want = ref.info_nce(pos[i], negs[i], mask[i], temperature, floor)
    np.testing.assert_allclose(loss[i], want, rtol=1e-5, atol=1e-6)
  assert np.all(loss >= 0) and loss[1] == 0
  assert not np.any(np.asarray(g_negs)[~mask])                     # masked negatives: no gradient


def test_mask_none_equals_all_true():
  pos, negs, _ = _inputs(1)
  got = jax.jit(jax.vmap(ops.info_nce))(pos, negs)
  want, _ = _info_nce(pos, negs, np.ones(negs.shape, bool), 1.0, None)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_floor_stops_gradient():
  pos = np.array([-10.0, 0.0], np.float32)                         # logp far below / above -2
  negs = np.array([[5.0, 4.0, 3.0], [-5.0, -4.0, -3.0]], np.float32)
  f = jax.jit(jax.vmap(jax.value_and_grad(
      lambda p, n: ops.info_nce(p, n, logp_floor=-2.0), argnums=(0, 1))))
  loss, (g_pos, g_negs) = f(pos, negs)
  np.testing.assert_allclose(loss[0], 2.0)
  assert g_pos[0] == 0 and not np.any(g_negs[0])
  assert g_pos[1] < 0 and np.all(g_negs[1] > 0)
  np.testing.assert_allclose(loss[1], ref.info_nce(0.0, negs[1]), rtol=1e-5)


def test_check_grads_and_bad_input():
  pos, negs, mask = _inputs(2)
  f = jax.jit(lambda p, n: ops.info_nce(p, n, jnp.asarray(mask[0]), temperature=0.7))
  jax.test_util.check_grads(f, (jnp.asarray(pos[0]), jnp.asarray(negs[0])), order=2,
                            modes=("rev",), eps=1e-3, atol=1e-2, rtol=1e-2)
  with pytest.raises(AssertionError):
    ops.info_nce(jnp.ones(1), jnp.ones(3))                            # positive rank
  with pytest.raises(AssertionError):
    ops.info_nce(jnp.ones(()), jnp.ones(3, jnp.int32))                 # int negatives
  with pytest.raises(AssertionError):
    ops.info_nce(jnp.ones(()), jnp.ones(3), jnp.ones(2, bool))         # mask shape
