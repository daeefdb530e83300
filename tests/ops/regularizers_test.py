"""Regularizer triples: value = <policy, z> + temperature * entropy(policy), grad value = policy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref

REFERENCES = {
    "shannon": (ref.softmax, ref.logsumexp, ref.shannon_entropy),
    "tsallis": (ref.sparsemax, ref.spmax, ref.tsallis_entropy),
}


@pytest.mark.parametrize("name", ["shannon", "tsallis"])
def test_triple_matches_references_and_decomposes(name):
  rng = np.random.default_rng(0)
  z = (rng.normal(size=(4, 33)) * 2).astype(np.float32)
  mask = rng.random((4, 33)) < 0.7
  mask[:, 3] = True
  policy_ref, value_ref, entropy_ref = REFERENCES[name]
  for temperature in (0.3,):                 # temperature 1: the other ops tests
    reg = ops.get_regularizer(name, temperature)
    assert reg.name == name and reg.temperature == temperature

    @jax.jit
    def triple(z, mask):
      p = jax.vmap(reg.policy)(z, mask)
      value, grad = jax.vmap(jax.value_and_grad(reg.value))(z, mask)
      return p, value, grad, jax.vmap(reg.entropy)(p)

    p, value, grad, entropy = jax.tree.map(np.asarray, triple(z, mask))
    for i in range(4):
      zi, mi = z[i], mask[i]
      p_ref = policy_ref(zi, mi, temperature)
      np.testing.assert_allclose(p[i], p_ref, atol=2e-6)
      np.testing.assert_allclose(value[i], value_ref(zi, mi, temperature), rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(entropy[i], entropy_ref(p_ref), atol=1e-5)
      np.testing.assert_allclose(
          value[i], p_ref @ np.where(mi, zi, 0.0) + temperature * entropy_ref(p_ref), rtol=1e-5,
          atol=1e-5)
      np.testing.assert_allclose(grad[i], p[i], atol=2e-6)


def test_tsallis_top_k_is_passed_through():
  z = jnp.asarray(np.random.default_rng(1).normal(size=100) * 1e-3, jnp.float32)
  for top_k in (1, 7, 500):
    reg = ops.tsallis_regularizer(0.5, top_k=top_k)
    for fn in (reg.policy, reg.value):
      assert f"top_k[axis=0 k={min(top_k, 100)}]" in str(jax.make_jaxpr(fn)(z))
  np.testing.assert_allclose(jax.jit(reg.policy)(z), ref.sparsemax(z, None, 0.5), atol=1e-6)


def test_unknown_regularizer_raises():
  with pytest.raises(ValueError, match="Unknown entropy regulariser"):
    ops.get_regularizer("renyi")
