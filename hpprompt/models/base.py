"""The interfaces the agents and baselines rely on: causal LMs and masked LMs.

Every causal LM (GPT-2, OPT, Llama) gives, for ids or input embeddings:
  hidden  [B, T, D_out]  the final hidden states, i.e. what the LM head multiplies (after the final
                         norm, and after OPT's project_out);
  logits  [B, T, V]      = unembed(hidden) = hidden @ output_embedding().T (+ bias if any);
  cache                  an updated `KVCache` when one was passed (incremental decoding).
`embed(ids)` gives the input embeddings that soft prompts and PEZ replace.

Masked LMs (BERT, RoBERTa) give hidden [B, T, D] and MLM logits [B, T, V] the same way.
`verbalizer_logits` reads a few classes' logits from hidden states (task scorers, FLOP counts).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt.models.cache import KVCache
from hpprompt.models.cache import SharedPrefix
from hpprompt.models.cache import make_mask
from hpprompt.models.layers import segment_mask

Array = jax.Array


class LMOutput(NamedTuple):
  logits: Array | None
  hidden: Array
  cache: KVCache | None = None


def _inputs(model, input_ids, inputs_embeds, attention_mask):
  if (input_ids is None) == (inputs_embeds is None):
    raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
  x = model.embed(input_ids) if inputs_embeds is None else inputs_embeds
  if attention_mask is None:
    attention_mask = jnp.ones(x.shape[:2], bool)
  return x, attention_mask


class CausalLM(nnx.Module):
  """Base class: subclasses set `config` and implement embed, backbone, output_embedding."""

  # Subclasses provide: num_layers, num_kv_heads, head_dim (for the cache), and
  #   embed(ids) -> [B, T, D_in]
  #   backbone(x, mask, positions, cache) -> (hidden [B, T, D_out], cache)
  #   output_embedding() -> [V, D_out]
  # and may override unembed (e.g. to add a bias).

  def unembed(self, hidden: Array) -> Array:
    return hidden @ self.output_embedding().T.astype(hidden.dtype)

  def unembed_ids(self, hidden: Array, ids: Array) -> Array:
    """Logits of the token `ids` only ([..., D] -> [..., len(ids)]), e.g. verbalizers."""
    return hidden @ self.output_embedding()[ids].T.astype(hidden.dtype)

  def init_cache(self, batch: int, max_length: int, dtype=None) -> KVCache:
    dtype = dtype or self.config.dtype
    return KVCache.init(self.num_layers, batch, max_length, self.num_kv_heads, self.head_dim,
                        dtype)

  def __call__(self, input_ids: Array | None = None, *, inputs_embeds: Array | None = None,
               attention_mask: Array | None = None, positions: Array | None = None,
               cache: KVCache | SharedPrefix | None = None,
               compute_logits: bool = True, segment_ids: Array | None = None) -> LMOutput:
    """Forward over ids or embeddings [B, T]; padding may be on either side (mask [B, T]).

    Positions default to the count of real tokens before each token (plus the cache's), so left- and
    right-padded rows give the same outputs at their real tokens. With a `KVCache` the new tokens are
    appended to it (incremental decoding); with a `SharedPrefix` the B rows continue their prefixes,
    which stay unchanged (scoring many continuations of the same inputs). `segment_ids` [B, T]
    (no cache): packed rows of several sequences (see `layers.segment_mask`; 0 marks padding).
    """
    x, attention_mask = _inputs(self, input_ids, inputs_embeds, attention_mask)
    if segment_ids is not None:
      if cache is not None:
        raise ValueError("segment_ids (packed rows) cannot be combined with a cache.")
      mask, pos = segment_mask(segment_ids, causal=True)
    elif cache is None:
      mask, pos = make_mask(attention_mask, causal=True)
    elif isinstance(cache, SharedPrefix):
      mask, pos = cache.attention_mask(attention_mask)
    else:
      cache, pos, mask = cache.advance(attention_mask)
    if positions is not None:
      pos = positions
    hidden, cache = self.backbone(x, mask, pos, cache)
    if isinstance(cache, KVCache):
      cache = cache.finish(x.shape[1])
    return LMOutput(self.unembed(hidden) if compute_logits else None, hidden, cache)


class MaskedLM(nnx.Module):
  """Base class for bidirectional encoders with an MLM head (BERT, RoBERTa).

  Subclasses implement embed(ids), backbone(x, mask, positions, token_type_ids) -> hidden and
  unembed(hidden) -> MLM logits (the transform + tied decoder + bias).
  """

  def __call__(self, input_ids: Array | None = None, *, inputs_embeds: Array | None = None,
               attention_mask: Array | None = None, token_type_ids: Array | None = None,
               positions: Array | None = None, compute_logits: bool = True,
               segment_ids: Array | None = None) -> LMOutput:
    """Forward over ids or embeddings [B, T] with padding mask [B, T], or packed rows of several
    sequences with `segment_ids` [B, T] (block-diagonal attention, per-segment positions)."""
    x, attention_mask = _inputs(self, input_ids, inputs_embeds, attention_mask)
    if segment_ids is not None:
      mask, pos = segment_mask(segment_ids, causal=False)
    else:
      mask, pos = make_mask(attention_mask, causal=False)
    if positions is not None:
      pos = positions
    hidden = self.backbone(x, mask, pos, token_type_ids)
    return LMOutput(self.unembed(hidden) if compute_logits else None, hidden)


def verbalizer_logits(model, hidden: jax.Array, ids: jax.Array) -> jax.Array:
  """Task-LM logits of the verbalizer tokens only, from hidden states [..., D] -> [..., C]."""
  if hasattr(model, "unembed_ids"):
    return model.unembed_ids(hidden, ids)
  return jnp.take(model.unembed(hidden), ids, axis=-1)
