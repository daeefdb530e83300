"""polyak_update against NumPy on a nested pytree."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref


def _trees(seed):
  rng = np.random.default_rng(seed)
  make = lambda: {
      "mlp": {"w": rng.normal(size=(3, 4)).astype(np.float32),
              "b": rng.normal(size=4).astype(np.float32)},
      "heads": [rng.normal(size=2).astype(np.float32), (rng.normal(size=()).astype(np.float32),)],
  }
  return make(), make()


def _assert_tree_close(got, want, **kw):
  assert jax.tree.structure(got) == jax.tree.structure(jax.tree.map(jnp.asarray, want))
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, **kw)


@pytest.mark.parametrize("rate", [0.001, 0.3])
def test_matches_numpy(rate):
  online, target = _trees(0)
  got = jax.jit(ops.polyak_update, static_argnums=2)(online, target, rate)
  _assert_tree_close(got, ref.polyak(online, target, rate), rtol=1e-6, atol=1e-7)
  # rate = 0.001 is RLPrompt / PIN: the target moves 0.1% of the way to the online net.
  delta = jax.tree.map(lambda g, t, o: (g - t) / (o - t), got, target, online)
  for d in jax.tree.leaves(delta):
    np.testing.assert_allclose(d, rate, rtol=1e-2)


def test_extreme_rates_and_mismatch():
  online, target = _trees(1)
  _assert_tree_close(ops.polyak_update(online, target, 0.0), target)
  _assert_tree_close(ops.polyak_update(online, target, 1.0), online)
  with pytest.raises(ValueError):
    ops.polyak_update(online, {"mlp": target["mlp"]}, 0.1)
