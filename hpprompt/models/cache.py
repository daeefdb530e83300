"""A functional KV cache and the attention masks built from it.

Slots are written left to right: a forward over T new tokens writes slots [index, index + T). A query
attends to a slot iff the slot holds a real token (`valid`) and the slot is not after the query's own
slot (causal by slot order). Positions (for RoPE / learned position embeddings) are separate from
slots, so a batch of right-padded prefixes can be continued: each row's continuation gets its own
positions while sharing the slot range. This is what prefix caching needs: encode a shared prefix
once, then `take` rows to score many continuations against it.
"""
import chex
import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array


@struct.dataclass
class KVCache:
  # One [B, S, kv_heads, head_dim] array per layer: a stacked [layers, ...] array makes XLA compile a
  # cached forward of a 30-layer model several times slower (measured on SmolLM2).
  keys: tuple[Array, ...]
  values: tuple[Array, ...]
  valid: Array     # [B, S] bool: slot holds a real token
  next_pos: Array  # [B] int32: position of the next real token of each row
  index: Array     # scalar int32: next slot to write

  @classmethod
  def init(cls, num_layers: int, batch: int, max_length: int, num_kv_heads: int, head_dim: int,
           dtype=jnp.float32) -> "KVCache":
    shape = (batch, max_length, num_kv_heads, head_dim)
    zeros = tuple(jnp.zeros(shape, dtype) for _ in range(num_layers))
    return cls(keys=zeros, values=tuple(jnp.zeros(shape, dtype) for _ in range(num_layers)),
               valid=jnp.zeros((batch, max_length), bool),
               next_pos=jnp.zeros((batch,), jnp.int32), index=jnp.zeros((), jnp.int32))

  @property
  def max_length(self) -> int:
    return self.valid.shape[1]

  def write(self, layer: int, k: Array, v: Array) -> "KVCache":
    """Writes k, v [B, T, kv_heads, head_dim] of one layer at slots [index, index + T)."""
    start = (0, self.index, 0, 0)
    update = lambda old, new: jax.lax.dynamic_update_slice(old, new.astype(old.dtype), start)
    keys = self.keys[:layer] + (update(self.keys[layer], k),) + self.keys[layer + 1:]
    values = self.values[:layer] + (update(self.values[layer], v),) + self.values[layer + 1:]
    return self.replace(keys=keys, values=values)

  def advance(self, attention_mask: Array) -> tuple["KVCache", Array, Array]:
    """Registers T new tokens (mask [B, T]) and returns (cache, positions [B, T], attn mask).

    The returned attention mask is [B, 1, T, S] over the cache slots, including the new ones.
    """
    chex.assert_rank(attention_mask, 2)
    mask = attention_mask.astype(bool)
    t = mask.shape[1]
    positions = self.next_pos[:, None] + jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1
    positions = jnp.maximum(positions, 0)
    valid = jax.lax.dynamic_update_slice(self.valid, mask, (0, self.index))
    slots = jnp.arange(self.max_length)
    query_slots = self.index + jnp.arange(t)
    causal = slots[None, :] <= query_slots[:, None]                             # [T, S]
    attn = valid[:, None, None, :] & causal[None, None]
    cache = self.replace(valid=valid, next_pos=self.next_pos + mask.sum(1, dtype=jnp.int32))
    return cache, positions, attn

  def finish(self, num_new: int) -> "KVCache":
    """Moves the write index past the T new slots (call once per forward, after all layers)."""
    return self.replace(index=self.index + num_new)

  def take(self, rows: Array) -> "KVCache":
    """Gathers batch rows (e.g. repeat each prefix for several continuations)."""
    return self.replace(keys=tuple(k[rows] for k in self.keys),
                        values=tuple(v[rows] for v in self.values),
                        valid=self.valid[rows], next_pos=self.next_pos[rows])


def make_mask(attention_mask: Array, *, causal: bool) -> tuple[Array, Array]:
  """Mask [B, 1, T, T] and positions [B, T] for a forward without cache (padding on either side)."""
  chex.assert_rank(attention_mask, 2)
  mask = attention_mask.astype(bool)
  t = mask.shape[1]
  attn = mask[:, None, None, :]
  if causal:
    attn = attn & jnp.tril(jnp.ones((t, t), bool))[None, None]
  positions = jnp.maximum(jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1, 0)
  return attn, positions


@struct.dataclass
class SharedPrefix:
  """Read-only keys/values of N encoded prefixes, each shared by `group` continuation rows.

  Continuation batches have N * group rows ordered (prefix n, member g). Attention of a row reads its
  prefix's slots without copying them (see `layers.shared_prefix_attention`), so scoring P prompts
  against N inputs costs P x N continuation tokens, not P x N copies of the inputs' caches.
  """
  keys: tuple[Array, ...]    # per layer [N, S, kv_heads, head_dim]
  values: tuple[Array, ...]
  valid: Array               # [N, S]
  length: Array    # [N] real tokens per prefix = position of the first continuation token
  group: int = struct.field(pytree_node=False)

  @classmethod
  def from_cache(cls, cache: KVCache, group: int) -> "SharedPrefix":
    return cls(keys=cache.keys, values=cache.values, valid=cache.valid, length=cache.next_pos,
               group=group)

  def attention_mask(self, attention_mask: Array) -> tuple[Array, Array]:
    """(mask [B, 1, T, S + T], positions [B, T]) for continuation rows with mask [B, T]."""
    chex.assert_rank(attention_mask, 2)
    mask = attention_mask.astype(bool)
    b, t = mask.shape
    if b != self.valid.shape[0] * self.group:
      raise ValueError(f"SharedPrefix: {b} continuation rows, expected {self.valid.shape[0]} "
                       f"prefixes x group {self.group}.")
    prefix_valid = jnp.repeat(self.valid, self.group, axis=0)                    # [B, S]
    own = mask[:, None, :] & jnp.tril(jnp.ones((t, t), bool))[None]              # [B, T, T]
    attn = jnp.concatenate(
        [jnp.broadcast_to(prefix_valid[:, None, :], (b, t, prefix_valid.shape[1])), own], axis=-1)
    start = jnp.repeat(self.length, self.group)
    positions = start[:, None] + jnp.maximum(jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1, 0)
    return attn[:, None], positions
