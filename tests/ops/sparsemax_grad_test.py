"""Gradients of spmax/sparsemax (finite differences, closed-form Jacobian) and bad or degenerate input."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref
from tests.ops.sparsemax_test import prob_tol
from tests.ops.sparsemax_test import random_rows
from tests.ops.sparsemax_test import run

# --- gradients ------------------------------------------------------------------------------------


def _well_separated(rng, v, temperature=1.0, margin=0.05):
  """Random logits with no z/a within `margin` of tau (finite differences stay on one piece)."""
  while True:
    z = rng.normal(size=v) * 0.5
    _, tau, _ = ref.sparsemax_sort(z / temperature)
    if np.min(np.abs(z / temperature - tau)) > margin:
      return jnp.asarray(z, jnp.float32)


def test_check_grads():
  """Finite differences (away from the kinks): spmax to order 2, sparsemax to order 1.

  With a temperature, see test_grad_spmax_is_sparsemax and test_sparsemax_jacobian."""
  kw = dict(eps=1e-3, atol=1e-2, rtol=1e-2)
  z = _well_separated(np.random.default_rng(14), 9)
  jax.test_util.check_grads(jax.jit(ops.spmax), (z,), order=2, modes=("rev",), **kw)
  jax.test_util.check_grads(jax.jit(ops.spmax), (z,), order=1, modes=("fwd",), **kw)
  jax.test_util.check_grads(jax.jit(ops.sparsemax), (z,), order=1, modes=("fwd", "rev"), **kw)


@functools.partial(jax.jit, static_argnames="temperature")
def _grad_and_policy(z, mask, temperature):
  g = jax.vmap(jax.grad(lambda z, m: ops.spmax(z, m, temperature=temperature)))(z, mask)
  return g, jax.vmap(lambda z, m: ops.sparsemax(z, m, temperature=temperature))(z, mask)


def test_grad_spmax_is_sparsemax():
  rng = np.random.default_rng(15)
  z = random_rows(rng, 65, n=8)
  mask = rng.random(z.shape) < 0.6
  mask[:, 0] = True
  for temperature in (1.0, 0.4):
    g, p = map(np.asarray, _grad_and_policy(z, mask, temperature))
    # z / a may round differently in the two compiled functions: tolerance in units of |z / a|.
    np.testing.assert_allclose(g, p, atol=prob_tol(z / temperature), rtol=0)
    assert not np.any(g[~mask])
    for i in range(8):
      np.testing.assert_allclose(g[i], ref.sparsemax(z[i], mask[i], temperature),
                                 atol=prob_tol(z[i] / temperature), rtol=0)


def test_sparsemax_jacobian():
  """jacrev and jacfwd == (diag(s) - s s^T / |S|) / a, zero rows and columns for masked entries."""
  rng = np.random.default_rng(16)
  z = random_rows(rng, 8, n=6)[:3]
  mask = np.ones(z.shape, bool)
  mask[1, [2, 5]] = False
  temperatures = (1.0, 0.5)

  @jax.jit
  def jacobians(z, mask):
    out = []
    for a in temperatures:
      f = lambda z, m: ops.sparsemax(z, m, temperature=a)
      out.append((jax.vmap(jax.jacrev(f))(z, mask), jax.vmap(jax.jacfwd(f))(z, mask)))
    return out

  for a, (jac_rev, jac_fwd) in zip(temperatures, jax.tree.map(np.asarray, jacobians(z, mask))):
    chex.assert_shape([jac_rev, jac_fwd], (3, 8, 8))
    for i in range(z.shape[0]):
      want = ref.sparsemax_jacobian(z[i], mask[i], a)
      np.testing.assert_allclose(jac_rev[i], want, atol=1e-6)
      np.testing.assert_allclose(jac_fwd[i], want, atol=1e-6)
    assert not np.any(jac_rev[1][:, ~mask[1]]) and not np.any(jac_rev[1][~mask[1], :])


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [ops.sparsemax, ops.spmax, ops.sparsemax_threshold])
def test_bad_inputs_raise(fn):
  with pytest.raises(AssertionError):
    fn(jnp.zeros((2, 3)))                                 # rank 2
  with pytest.raises(AssertionError):
    fn(jnp.zeros(()))                                     # rank 0
  with pytest.raises(AssertionError):
    fn(jnp.arange(3))                                     # int logits
  with pytest.raises(AssertionError):
    fn(jnp.zeros(3), jnp.ones(4, bool))                   # mask shape
  with pytest.raises(AssertionError):
    fn(jnp.zeros(3), jnp.ones(3, jnp.int32))              # non-boolean mask
  with pytest.raises(AssertionError):
    ops.tsallis_entropy(jnp.ones((2, 2)))


def test_numpy_mask_closed_over_in_jit_vmap():
  """A NumPy mask constant (e.g. a fixed vocabulary filter) closed over in a jitted, vmapped call.

  Fails on jax 0.10.2 with "AssertionError: non-canonical constant of type ndarray": vmap passes the
  NumPy array unconverted as a primal of the custom_jvp functions. Plain jnp code (softmax) is fine.
  """
  rng = np.random.default_rng(17)
  z = rng.normal(size=(3, 8)).astype(np.float32)
  mask = np.ones((3, 8), bool)
  mask[:, 3] = False
  p, value = jax.jit(lambda z: (jax.vmap(ops.sparsemax)(z, mask), jax.vmap(ops.spmax)(z, mask)))(z)
  for i in range(3):
    np.testing.assert_allclose(p[i], ref.sparsemax(z[i], mask[i]), atol=1e-6)
    np.testing.assert_allclose(value[i], ref.spmax(z[i], mask[i]), atol=1e-6)


def test_all_masked_gives_nan():
  """Documented: no distribution over an empty set; the other rows of a batch are unaffected."""
  p, tau, size, value = run(np.array([[1.0, 2.0, 3.0], [1.0, 0.8, 0.1]], np.float32),
                            np.array([[False] * 3, [True] * 3]))
  assert np.all(np.isnan(p[0])) and np.isnan(value[0]) and np.isnan(tau[0]) and size[0] == 0
  np.testing.assert_allclose(p[1], ref.sparsemax([1.0, 0.8, 0.1]), atol=1e-6)
  assert size[1] == 2


@pytest.mark.parametrize("position", [0, 5, 40, 299])
@pytest.mark.parametrize("top_k", [1, 64, 1000])
def test_nan_logits_give_nan(position, top_k):
  z = np.random.default_rng(position).normal(size=(2, 300)).astype(np.float32)
  z[0, position] = np.nan
  p, tau, _, value = run(z, top_k=top_k)
  assert np.isnan(value[0]) and np.isnan(tau[0]) and np.all(np.isnan(p[0]))
  assert not np.isnan(value[1]) and not np.any(np.isnan(p[1]))
