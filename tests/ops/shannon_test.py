"""softmax, logsumexp and shannon_entropy against NumPy, with masks and temperature."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref

V = 17


@functools.partial(jax.jit, static_argnames="temperature")
def _shannon(z, mask, temperature):
  def one(z, m):
    p = ops.softmax(z, m, temperature=temperature)
    return p, ops.logsumexp(z, m, temperature=temperature), ops.shannon_entropy(p)
  return jax.vmap(one)(z, mask)


def _inputs(seed, n=6):
  rng = np.random.default_rng(seed)
  z = (rng.normal(size=(n, V)) * rng.uniform(0.1, 10, size=(n, 1))).astype(np.float32)
  z[0] += 80.0                                                        # needs the max shift
  mask = rng.random((n, V)) < 0.6
  mask[:, 0] = True
  mask[1] = True
  return z, mask


@pytest.mark.parametrize("temperature", [1.0, 0.25, 3.0])
def test_matches_numpy(temperature):
  z, mask = _inputs(0)
  p, value, entropy = _shannon(jnp.asarray(z), jnp.asarray(mask), temperature)
  chex.assert_shape([p, value, entropy], [z.shape, (6,), (6,)])
  chex.assert_type([p, value, entropy], jnp.float32)
  for i in range(z.shape[0]):
    p_ref = ref.softmax(z[i], mask[i], temperature)
    np.testing.assert_allclose(p[i], p_ref, atol=1e-6, rtol=1e-5)
    assert not np.any(np.asarray(p[i])[~mask[i]])
    v_ref = ref.logsumexp(z[i], mask[i], temperature)
    np.testing.assert_allclose(value[i], v_ref, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(entropy[i], ref.shannon_entropy(p_ref), atol=2e-5)
    # a logsumexp(z / a) = <p, z> + a H(p).
    inner = p_ref @ np.where(mask[i], z[i], 0.0)
    np.testing.assert_allclose(value[i], inner + temperature * ref.shannon_entropy(p_ref),
                               rtol=2e-6, atol=1e-5)


def test_mask_none_equals_all_true_and_masked_logits_change_nothing():
  z, mask = _inputs(1)
  ones = np.ones(z.shape, bool)
  f = jax.jit(jax.vmap(lambda z: (ops.softmax(z), ops.logsumexp(z))))
  p, value = f(jnp.asarray(z))
  p1, value1, _ = _shannon(jnp.asarray(z), jnp.asarray(ones), 1.0)
  np.testing.assert_array_equal(p, p1)
  np.testing.assert_array_equal(value, value1)
  p2, value2, _ = _shannon(jnp.asarray(z), jnp.asarray(mask), 1.0)
  p3, value3, _ = _shannon(jnp.asarray(np.where(mask, z, np.float32(1e6))), jnp.asarray(mask), 1.0)
  np.testing.assert_array_equal(p2, p3)
  np.testing.assert_array_equal(value2, value3)


def test_entropy_of_known_distributions():
  p = jnp.asarray([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25] * 4])
  np.testing.assert_allclose(jax.jit(jax.vmap(ops.shannon_entropy))(p), [0, np.log(2), np.log(4)],
                             atol=1e-7)


def test_gradients():
  z, mask = _inputs(2, n=2)
  z = jnp.asarray(z[1] / 10)
  kw = dict(eps=1e-3, atol=1e-2, rtol=1e-2)
  lse = jax.jit(lambda z: ops.logsumexp(z, temperature=0.5))
  jax.test_util.check_grads(lse, (z,), order=2, modes=("rev",), **kw)
  jax.test_util.check_grads(jax.jit(ops.softmax), (z,), order=1, modes=("rev",), **kw)
  # grad a logsumexp(z / a) = softmax(z / a); masked entries get zero gradient.
  m = jnp.asarray(mask[0])
  g = jax.jit(jax.grad(lambda z: ops.logsumexp(z, m, temperature=0.5)))(z)
  np.testing.assert_allclose(g, ref.softmax(z, mask[0], 0.5), atol=1e-6)
  assert not np.any(np.asarray(g)[~mask[0]])


def test_bfloat16():
  z = jnp.asarray(np.random.default_rng(3).normal(size=V), jnp.bfloat16)
  p, value = jax.jit(lambda z: (ops.softmax(z), ops.logsumexp(z)))(z)
  chex.assert_type([p, value], jnp.bfloat16)
  z64 = np.asarray(z.astype(jnp.float32), np.float64)
  np.testing.assert_allclose(np.asarray(p, np.float32), ref.softmax(z64), atol=2e-3, rtol=1e-2)
  np.testing.assert_allclose(float(value), ref.logsumexp(z64), rtol=1e-2)


def test_all_masked():
  """Documented: NaN probabilities and a -inf value."""
  p, value, _ = _shannon(jnp.ones((2, V)), jnp.zeros((2, V), bool), 1.0)
  assert np.all(np.isnan(p)) and np.all(np.isneginf(value))


@pytest.mark.parametrize("fn", [ops.softmax, ops.logsumexp])
def test_bad_inputs_raise(fn):
  with pytest.raises(AssertionError):
    fn(jnp.zeros((2, 3)))
  with pytest.raises(AssertionError):
    fn(jnp.arange(3))
  with pytest.raises(AssertionError):
    fn(jnp.zeros(3), jnp.ones(2, bool))
  with pytest.raises(AssertionError):
    fn(jnp.zeros(3), jnp.ones(3))                          # float mask
  with pytest.raises(AssertionError):
    ops.shannon_entropy(jnp.arange(3))
