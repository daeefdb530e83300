"""Layers shared by every model family: attention (with masks, GQA, RoPE and a KV cache), MLPs, norms.

Conventions: activations are [batch, time, features]; Linear kernels are [in, out] (Hugging Face
`nn.Linear.weight` transposed); attention heads are split as [B, T, heads, head_dim].
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt.models.cache import KVCache
from hpprompt.models.cache import SharedPrefix

Array = jax.Array

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
}


def activation(name: str) -> Callable[[Array], Array]:
  if name not in ACTIVATIONS:
    raise ValueError(f"Unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}.")
  return ACTIVATIONS[name]


def layer_norm(dim: int, eps: float, *, param_dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
  # use_fast_variance=False: E[(x-mu)^2] like PyTorch, not E[x^2]-mu^2.
  return nnx.LayerNorm(dim, epsilon=eps, use_fast_variance=False, param_dtype=param_dtype,
                       rngs=rngs)


class RMSNorm(nnx.Module):
  """x / sqrt(mean(x^2) + eps) * w, computed in float32 like Hugging Face's LlamaRMSNorm."""

  def __init__(self, dim: int, eps: float, *, param_dtype=jnp.float32):
    self.eps = eps
    self.scale = nnx.Param(jnp.ones((dim,), param_dtype))

  def __call__(self, x: Array) -> Array:
    dtype = x.dtype
    x = x.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
    return (self.scale[...].astype(jnp.float32) * x).astype(dtype)


@dataclasses.dataclass(frozen=True)
class RoPE:
  """Rotary position embedding, rotate-half layout (Hugging Face Llama), on [B, T, heads, head_dim]."""
  head_dim: int
  theta: float = 10_000.0

  def inv_freq(self) -> Array:
    """theta^(-2i/d) for i < d/2 (subclasses change the frequencies, e.g. Llama 3.1 scaling)."""
    half = self.head_dim // 2
    return 1.0 / (self.theta ** (jnp.arange(0, half, dtype=jnp.float32) * 2 / self.head_dim))

  def __call__(self, x: Array, positions: Array) -> Array:
    half = self.head_dim // 2
    angles = positions.astype(jnp.float32)[..., None] * self.inv_freq()   # [B, T, half]
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class Attention(nnx.Module):
  """Multi-head attention with grouped KV heads, optional RoPE, and an optional KV cache.

  The mask is built once per forward by `cache.attention_mask` / `make_mask` and passed in: boolean
  [B, 1, T_query, T_key], True where a query may attend to a key.
  """

  def __init__(self, dim: int, num_heads: int, *, num_kv_heads: int | None = None,
               head_dim: int | None = None, qkv_bias: bool = True, out_bias: bool = True,
               rope: RoPE | None = None, scale: float | None = None, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.num_heads = num_heads
    self.num_kv_heads = num_kv_heads or num_heads
    self.head_dim = head_dim or dim // num_heads
    if num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}.")
    self.rope = rope
    self.scale = scale
    linear = lambda i, o, b: nnx.Linear(i, o, use_bias=b, param_dtype=param_dtype, rngs=rngs)
    self.q = linear(dim, num_heads * self.head_dim, qkv_bias)
    self.k = linear(dim, self.num_kv_heads * self.head_dim, qkv_bias)
    self.v = linear(dim, self.num_kv_heads * self.head_dim, qkv_bias)
    self.o = linear(num_heads * self.head_dim, dim, out_bias)

  def __call__(self, x: Array, mask: Array | None, *, positions: Array | None = None,
               kv: Array | None = None, cache: KVCache | None = None, layer: int = 0,
               ) -> tuple[Array, KVCache | None]:
    """x [B, T, D]; kv: optional other sequence to attend to (cross-attention), [B, S, D]."""
    b, t, _ = x.shape
    source = x if kv is None else kv
    q = self.q(x).reshape(b, t, self.num_heads, self.head_dim)
    k = self.k(source).reshape(b, source.shape[1], self.num_kv_heads, self.head_dim)
    v = self.v(source).reshape(b, source.shape[1], self.num_kv_heads, self.head_dim)
    if self.rope is not None:
      q, k = self.rope(q, positions), self.rope(k, positions)
    if isinstance(cache, SharedPrefix):
      out = shared_prefix_attention(q, k, v, cache.keys[layer], cache.values[layer], mask,
                                    scale=self.scale)
      return self.o(out.reshape(b, t, self.num_heads * self.head_dim)), cache
    if cache is not None:
      cache = cache.write(layer, k, v)
      k, v = cache.keys[layer], cache.values[layer]
    out = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask=mask,
                                       scale=self.scale)
    return self.o(out.reshape(b, t, self.num_heads * self.head_dim)), cache


def shared_prefix_attention(q: Array, k: Array, v: Array, prefix_k: Array, prefix_v: Array,
                            mask: Array, *, scale: float | None = None) -> Array:
  """Attention of continuation rows over [their prefix's slots ; their own tokens], no KV copies.

  Args:
    q: [B, T, H, hd] queries of B = N * G rows ordered (prefix n, member g).
    k, v: [B, T, K, hd] the rows' own keys and values.
    prefix_k, prefix_v: [N, S, K, hd] keys and values of the N prefixes.
    mask: [B, 1, T, S + T] boolean (see `SharedPrefix.attention_mask`).
    scale: score scale (default 1/sqrt(hd)).

  Returns:
    [B, T, H, hd].
  """
  b, t, h, hd = q.shape
  n, s, kv = prefix_k.shape[0], prefix_k.shape[1], prefix_k.shape[2]
  g, rep = b // n, h // kv
  scale = hd ** -0.5 if scale is None else scale
  qf = q.astype(jnp.float32) * scale
  qp = qf.reshape(n, g, t, kv, rep, hd)
  s_prefix = jnp.einsum("ngtkrd,nskd->ngkrts", qp, prefix_k.astype(jnp.float32))
  s_self = jnp.einsum("btkrd,bskd->bkrts", qf.reshape(b, t, kv, rep, hd), k.astype(jnp.float32))
  scores = jnp.concatenate([s_prefix.reshape(b, kv, rep, t, s), s_self], axis=-1)
  scores = jnp.where(mask[:, :, None], scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1)
  p_prefix = probs[..., :s].reshape(n, g, kv, rep, t, s)
  out = jnp.einsum("ngkrts,nskd->ngtkrd", p_prefix, prefix_v.astype(jnp.float32)).reshape(
      b, t, kv, rep, hd)
  out = out + jnp.einsum("bkrts,bskd->btkrd", probs[..., s:], v.astype(jnp.float32))
  return out.reshape(b, t, h, hd).astype(q.dtype)


def segment_mask(segment_ids: Array, *, causal: bool) -> tuple[Array, Array]:
  """Block-diagonal mask [B, 1, T, T] and per-segment positions [B, T] of packed rows.

  segment_ids [B, T]: the sequence each slot belongs to, > 0 for real tokens and 0 for padding; a
  segment's tokens are contiguous. A query attends only to keys of its own segment (and, if causal,
  not to later ones); positions count from 0 at each segment's first token, so a packed sequence
  gets the same positions as on its own row.
  """
  seg = segment_ids.astype(jnp.int32)
  t = seg.shape[1]
  real = seg > 0
  attn = (seg[:, :, None] == seg[:, None, :]) & real[:, :, None] & real[:, None, :]
  if causal:
    attn = attn & jnp.tril(jnp.ones((t, t), bool))[None]
  slots = jnp.arange(t, dtype=jnp.int32)
  starts = jnp.concatenate([jnp.ones_like(seg[:, :1], bool), seg[:, 1:] != seg[:, :-1]], axis=1)
  first = jax.lax.cummax(jnp.where(starts, slots[None], 0), axis=1)
  positions = jnp.where(real, slots[None] - first, 0)
  # Padding queries attend to themselves only: the softmax stays finite and their output is unused.
  attn = attn | (~real[:, :, None] & jnp.eye(t, dtype=bool)[None])
  return attn[:, None], positions


class MLP(nnx.Module):
  """up -> activation -> down, optionally gated (SwiGLU: down(act(gate(x)) * up(x)))."""

  def __init__(self, dim: int, hidden: int, act: str, *, gated: bool = False, bias: bool = True,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation(act)
    linear = lambda i, o: nnx.Linear(i, o, use_bias=bias, param_dtype=param_dtype, rngs=rngs)
    self.gate = linear(dim, hidden) if gated else None
    self.up = linear(dim, hidden)
    self.down = linear(hidden, dim)

  def __call__(self, x: Array) -> Array:
    if self.gate is not None:
      return self.down(self.act(self.gate(x)) * self.up(x))
    return self.down(self.act(self.up(x)))
