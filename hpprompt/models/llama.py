"""Llama family (Llama 2/3, SmolLM2, TinyLlama, ...) as an NNX causal LM.

"LLaMA: Open and Efficient Foundation Language Models", Touvron et al. 2023
(https://arxiv.org/abs/2302.13971): pre-RMSNorm blocks, rotary positions ("RoFormer", Su et al.
2021, https://arxiv.org/abs/2104.09864), SwiGLU MLP ("GLU Variants Improve Transformer", Shazeer
2020, https://arxiv.org/abs/2002.05202) and grouped-query attention ("GQA", Ainslie et al. 2023,
https://arxiv.org/abs/2305.13245). The LM head is tied to the embedding or a separate `lm_head`.
Llama 3.1's RoPE scaling ("The Llama 3 Herd of Models", Grattafiori et al. 2024,
https://arxiv.org/abs/2407.21783) is supported; other RoPE scalings raise `ConversionError`.
"""
import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt.models import layers
from hpprompt.models.base import CausalLM
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.convert.core import Family
from hpprompt.models.convert.core import Rule
from hpprompt.models.convert.core import add_missing_prefix
from hpprompt.models.convert.core import check_config
from hpprompt.models.convert.core import transpose


@dataclasses.dataclass(frozen=True)
class Llama3RopeScaling:
  """Llama 3.1 frequency-dependent RoPE scaling (Hugging Face rope_type 'llama3')."""
  factor: float
  low_freq_factor: float
  high_freq_factor: float
  original_max_positions: int


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  vocab_size: int
  dim: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  max_positions: int = 2048
  eps: float = 1e-6
  rope_theta: float = 10_000.0
  rope_scaling: Llama3RopeScaling | None = None
  tie_embeddings: bool = True
  attention_bias: bool = False
  mlp_bias: bool = False
  activation: str = "silu"
  dtype: Any = jnp.float32

  @classmethod
  def from_hf_config(cls, hf: dict, dtype=jnp.float32) -> "LlamaConfig":
    check_config(hf, {
        "vocab_size": None, "hidden_size": None, "intermediate_size": None,
        "num_hidden_layers": None, "num_attention_heads": None, "num_key_value_heads": None,
        "head_dim": None, "max_position_embeddings": None, "rms_norm_eps": None,
        "rope_theta": None, "rope_scaling": None, "rope_parameters": None,
        "hidden_act": tuple(layers.ACTIVATIONS),
        "tie_word_embeddings": (True, False),
        "attention_bias": (True, False),
        "mlp_bias": (True, False),
        "pretraining_tp": 1,               # >1 (sliced matmuls) is refused
        "rope_interleaved": False,         # nanotron exports (SmolLM2) write False
    }, family="llama", ignored={"unk_token_id", "is_llama_config"})
    heads = hf["num_attention_heads"]
    theta, scaling = _rope_from_hf(hf)
    return cls(vocab_size=hf["vocab_size"], dim=hf["hidden_size"],
               num_layers=hf["num_hidden_layers"], num_heads=heads,
               num_kv_heads=hf.get("num_key_value_heads") or heads,
               head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
               mlp_dim=hf["intermediate_size"],
               max_positions=hf.get("max_position_embeddings", 2048),
               eps=hf.get("rms_norm_eps", 1e-6), rope_theta=theta, rope_scaling=scaling,
               tie_embeddings=hf.get("tie_word_embeddings", True),
               attention_bias=hf.get("attention_bias", False), mlp_bias=hf.get("mlp_bias", False),
               activation=hf.get("hidden_act", "silu"), dtype=dtype)


_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def _rope_from_hf(hf: dict) -> tuple[float, Llama3RopeScaling | None]:
  """(theta, scaling) from `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling`."""
  # Like transformers 5: a non-empty rope_scaling replaces rope_parameters; rope_theta fills in.
  params = dict(hf.get("rope_scaling") or hf.get("rope_parameters") or {})
  theta = float(params.pop("rope_theta", hf.get("rope_theta", 10_000.0)))
  kind = params.pop("rope_type", None) or params.get("type") or "default"
  params.pop("type", None)
  if kind == "default" and not params:
    return theta, None
  if kind == "llama3" and set(params) == set(_LLAMA3_KEYS):
    return theta, Llama3RopeScaling(
        factor=float(params["factor"]), low_freq_factor=float(params["low_freq_factor"]),
        high_freq_factor=float(params["high_freq_factor"]),
        original_max_positions=int(params["original_max_position_embeddings"]))
  raise ConversionError(f"llama: unsupported RoPE scaling rope_type={kind!r} with {params}; "
                        f"supported: 'default' (no scaling) and 'llama3' with keys {_LLAMA3_KEYS}.")


def llama3_inv_freq(head_dim: int, theta: float, s: Llama3RopeScaling) -> jax.Array:
  """Llama 3.1 scaling: long wavelengths / factor, short ones kept, a smooth ramp in between."""
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  low_wavelen = s.original_max_positions / s.low_freq_factor
  high_wavelen = s.original_max_positions / s.high_freq_factor
  wavelen = 2 * math.pi / inv_freq
  scaled = jnp.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
  smooth = (s.original_max_positions / wavelen - s.low_freq_factor) / (
      s.high_freq_factor - s.low_freq_factor)
  smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
  medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
  return jnp.where(medium, smoothed, scaled)


@dataclasses.dataclass(frozen=True)
class ScaledRoPE(layers.RoPE):
  """`layers.RoPE` (rotate-half) with Llama 3.1 scaled frequencies."""
  scaling: Llama3RopeScaling | None = None

  def inv_freq(self) -> jax.Array:
    return llama3_inv_freq(self.head_dim, self.theta, self.scaling)


def _rope(cfg: LlamaConfig) -> layers.RoPE:
  if cfg.rope_scaling is None:
    return layers.RoPE(cfg.head_dim, cfg.rope_theta)
  return ScaledRoPE(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)


class LlamaBlock(nnx.Module):

  def __init__(self, cfg: LlamaConfig, rope: layers.RoPE, *, rngs: nnx.Rngs):
    self.input_layernorm = layers.RMSNorm(cfg.dim, cfg.eps, param_dtype=cfg.dtype)
    self.attn = layers.Attention(cfg.dim, cfg.num_heads, num_kv_heads=cfg.num_kv_heads,
                                 head_dim=cfg.head_dim, qkv_bias=cfg.attention_bias,
                                 out_bias=cfg.attention_bias, rope=rope, param_dtype=cfg.dtype,
                                 rngs=rngs)
    self.post_attention_layernorm = layers.RMSNorm(cfg.dim, cfg.eps, param_dtype=cfg.dtype)
    self.mlp = layers.MLP(cfg.dim, cfg.mlp_dim, cfg.activation, gated=True, bias=cfg.mlp_bias,
                          param_dtype=cfg.dtype, rngs=rngs)

  def __call__(self, x, mask, positions, cache, layer):
    h, cache = self.attn(self.input_layernorm(x), mask, positions=positions, cache=cache,
                         layer=layer)
    x = x + h
    return x + self.mlp(self.post_attention_layernorm(x)), cache


class Llama(CausalLM):
  """Llama LM: `hidden` is the final RMSNorm's output; the head is `embed_tokens` or `lm_head`."""

  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    self.num_layers, self.num_kv_heads = cfg.num_layers, cfg.num_kv_heads
    self.head_dim = cfg.head_dim
    self.embed_tokens = nnx.Embed(cfg.vocab_size, cfg.dim, param_dtype=cfg.dtype, rngs=rngs)
    rope = _rope(cfg)
    self.layers = nnx.List([LlamaBlock(cfg, rope, rngs=rngs) for _ in range(cfg.num_layers)])
    self.norm = layers.RMSNorm(cfg.dim, cfg.eps, param_dtype=cfg.dtype)
    # Untied head stored [V, D] like the embedding (and torch), so unembed is hidden @ W.T.
    self.lm_head = None if cfg.tie_embeddings else nnx.Param(
        nnx.initializers.normal(0.02)(rngs.params(), (cfg.vocab_size, cfg.dim), cfg.dtype))

  def embed(self, input_ids: jax.Array) -> jax.Array:
    return self.embed_tokens(input_ids)

  def output_embedding(self) -> jax.Array:
    return self.embed_tokens.embedding[...] if self.lm_head is None else self.lm_head[...]

  def backbone(self, x, mask, positions, cache):
    for i, block in enumerate(self.layers):
      x, cache = block(x, mask, positions, cache, i)
    return self.norm(x), cache


_ATTN = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"}
_MLP = ("gate", "up", "down")

CHECKPOINT_RULES = (
    Rule("embed_tokens.embedding", "model.embed_tokens.weight"),
    Rule("norm.scale", "model.norm.weight"),
    Rule("lm_head", "lm_head.weight"),
    *(Rule(f"layers.{{i}}.{n}.scale", f"model.layers.{{i}}.{n}.weight")
      for n in ("input_layernorm", "post_attention_layernorm")),
    *(Rule(f"layers.{{i}}.attn.{ours}.kernel", f"model.layers.{{i}}.self_attn.{theirs}.weight",
           transpose) for ours, theirs in _ATTN.items()),
    *(Rule(f"layers.{{i}}.attn.{ours}.bias", f"model.layers.{{i}}.self_attn.{theirs}.bias")
      for ours, theirs in _ATTN.items()),
    *(Rule(f"layers.{{i}}.mlp.{n}.kernel", f"model.layers.{{i}}.mlp.{n}_proj.weight", transpose)
      for n in _MLP),
    *(Rule(f"layers.{{i}}.mlp.{n}.bias", f"model.layers.{{i}}.mlp.{n}_proj.bias") for n in _MLP),
)
# A tied head saved anyway, and the rotary buffers of old (4.3x) PyTorch checkpoints.
IGNORED_KEYS = (r"lm_head\.weight", r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")


# Checkpoints of `LlamaModel` (no LM head) lack the 'model.' prefix.
normalize_keys = add_missing_prefix("model.")


FAMILIES = {"llama": Family(LlamaConfig.from_hf_config, Llama, CHECKPOINT_RULES, IGNORED_KEYS,
                            normalize_keys)}
