"""SharedPrefix scoring with grouped KV heads and RoPE (Llama) equals the full forward."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models.cache import SharedPrefix
from hpprompt.models.llama import Llama
from hpprompt.models.llama import LlamaConfig


def test_shared_prefix_gqa_rope_equals_full_forward():
  cfg = LlamaConfig(vocab_size=61, dim=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                    mlp_dim=48)
  model = Llama(cfg, rngs=nnx.Rngs(0))
  # Non-trivial weights: random normal everywhere (init gives near-zero attention patterns).
  graphdef, state = nnx.split(model)
  leaves, tree = jax.tree.flatten(state)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  model = nnx.merge(graphdef, jax.tree.unflatten(
      tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]))
  rng = np.random.default_rng(0)
  lengths, conts = [7, 3, 5], rng.integers(0, 61, size=(4, 3)).astype(np.int32)
  cmask = np.ones((4, 3), bool)
  cmask[1, 2] = cmask[3, 1:] = False                    # right-padded continuations
  prefix = np.zeros((3, 7), np.int32)
  pmask = np.zeros((3, 7), bool)
  for i, n in enumerate(lengths):
    prefix[i, :n] = rng.integers(0, 61, size=n)
    pmask[i, :n] = True
  fwd = jax.jit(lambda ids, mask=None, cache=None: model(ids, attention_mask=mask, cache=cache))
  cache = fwd(jnp.asarray(prefix), jnp.asarray(pmask), model.init_cache(3, 7)).cache
  shared = SharedPrefix.from_cache(cache, group=4)
  out = fwd(jnp.asarray(np.tile(conts, (3, 1))), jnp.asarray(np.tile(cmask, (3, 1))), shared)
  for r in range(12):
    p, c = divmod(r, 4)
    real_p, real_c = prefix[p][pmask[p]], conts[c][cmask[c]]
    want = fwd(jnp.asarray(np.concatenate([real_p, real_c]))[None]).logits[0, len(real_p):]
    np.testing.assert_allclose(out.logits[r][cmask[c]], want, atol=2e-5)
