"""OPT family (facebook/opt-125m, opt-350m, opt-1.3b ...) as an NNX causal LM (PIN's policy LM).

"OPT: Open Pre-trained Transformer Language Models", Zhang et al. 2022
(https://arxiv.org/abs/2205.01068).
Learned absolute positions with an offset of 2 (row p + 2 holds position p), ReLU MLP, tied LM head
without bias. Most sizes are pre-LayerNorm with a final LayerNorm; opt-350m is post-LayerNorm (each
sublayer's norm follows the residual add, no final norm) and embeds tokens in 512 dims, projected to
the 1024-d residual stream by `project_in` and back by `project_out` before the head.
"""
import dataclasses
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

POSITION_OFFSET = 2   # fairseq legacy: embed_positions has max_positions + 2 rows


@dataclasses.dataclass(frozen=True)
class OPTConfig:
  vocab_size: int
  max_positions: int
  dim: int                      # hidden_size: the residual stream
  embed_dim: int                # word_embed_proj_dim: token embeddings and LM head
  num_layers: int
  num_heads: int
  mlp_dim: int
  pre_norm: bool = True         # do_layer_norm_before
  final_norm: bool = True       # pre_norm and not _remove_final_layer_norm
  bias: bool = True             # enable_bias: q/k/v/out and fc1/fc2 biases
  norm_affine: bool = True      # layer_norm_elementwise_affine
  eps: float = 1e-5             # torch nn.LayerNorm default; OPT has no config key for it
  activation: str = "relu"
  dtype: Any = jnp.float32

  @classmethod
  def from_hf_config(cls, hf: dict, dtype=jnp.float32) -> "OPTConfig":
    check_config(hf, {
        "vocab_size": None, "max_position_embeddings": None, "hidden_size": None,
        "word_embed_proj_dim": None, "num_hidden_layers": None, "num_attention_heads": None,
        "ffn_dim": None,
        "do_layer_norm_before": (True, False),
        "_remove_final_layer_norm": (True, False),
        "enable_bias": (True, False),
        "layer_norm_elementwise_affine": (True, False),
        "activation_function": tuple(layers.ACTIVATIONS),
        "tie_word_embeddings": True,
        "output_projection": True,   # some hub configs: the (tied) LM head exists
    }, family="opt", ignored={"init_std"})
    dim, heads = hf["hidden_size"], hf["num_attention_heads"]
    if dim % heads:
      raise ConversionError(f"opt: hidden_size={dim} is not a multiple of "
                            f"num_attention_heads={heads}.")
    pre_norm = hf.get("do_layer_norm_before", True)
    return cls(vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"], dim=dim,
               embed_dim=hf.get("word_embed_proj_dim") or dim,
               num_layers=hf["num_hidden_layers"], num_heads=heads, mlp_dim=hf["ffn_dim"],
               pre_norm=pre_norm,
               final_norm=pre_norm and not hf.get("_remove_final_layer_norm", False),
               bias=hf.get("enable_bias", True),
               norm_affine=hf.get("layer_norm_elementwise_affine", True),
               activation=hf.get("activation_function", "relu"), dtype=dtype)


def _layer_norm(cfg: OPTConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
  if cfg.norm_affine:
    return layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)
  return nnx.LayerNorm(cfg.dim, epsilon=cfg.eps, use_bias=False, use_scale=False,
                       use_fast_variance=False, param_dtype=cfg.dtype, rngs=rngs)


class OPTBlock(nnx.Module):
  """Pre-LN: x + attn(norm(x)), then + mlp(norm(x)). Post-LN (opt-350m): norm(x + attn(x)), ..."""

  def __init__(self, cfg: OPTConfig, *, rngs: nnx.Rngs):
    self.pre_norm = cfg.pre_norm
    self.attn_norm = _layer_norm(cfg, rngs)
    # Default scale head_dim**-0.5, as HF OPT applies to q.
    self.attn = layers.Attention(cfg.dim, cfg.num_heads, qkv_bias=cfg.bias, out_bias=cfg.bias,
                                 param_dtype=cfg.dtype, rngs=rngs)
    self.mlp_norm = _layer_norm(cfg, rngs)
    self.mlp = layers.MLP(cfg.dim, cfg.mlp_dim, cfg.activation, bias=cfg.bias,
                          param_dtype=cfg.dtype, rngs=rngs)

  def __call__(self, x, mask, cache, layer):
    if self.pre_norm:
      h, cache = self.attn(self.attn_norm(x), mask, cache=cache, layer=layer)
      x = x + h
      return x + self.mlp(self.mlp_norm(x)), cache
    h, cache = self.attn(x, mask, cache=cache, layer=layer)
    x = self.attn_norm(x + h)
    return self.mlp_norm(x + self.mlp(x)), cache


class OPT(CausalLM):
  """OPT LM, head tied to `embed_tokens`.

  `embed` gives the raw token embeddings [B, T, embed_dim], before project_in (soft prompts live
  there); `hidden` is the head's input, after the final norm and project_out: [B, T, embed_dim].
  """

  def __init__(self, cfg: OPTConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    self.num_layers, self.num_kv_heads = cfg.num_layers, cfg.num_heads
    self.head_dim = cfg.dim // cfg.num_heads
    self.embed_tokens = nnx.Embed(cfg.vocab_size, cfg.embed_dim, param_dtype=cfg.dtype, rngs=rngs)
    self.embed_positions = nnx.Embed(cfg.max_positions + POSITION_OFFSET, cfg.dim,
                                     param_dtype=cfg.dtype, rngs=rngs)
    projected = cfg.embed_dim != cfg.dim
    linear = lambda i, o: nnx.Linear(i, o, use_bias=False, param_dtype=cfg.dtype, rngs=rngs)
    self.project_in = linear(cfg.embed_dim, cfg.dim) if projected else None
    self.project_out = linear(cfg.dim, cfg.embed_dim) if projected else None
    self.layers = nnx.List([OPTBlock(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.final_norm = _layer_norm(cfg, rngs) if cfg.final_norm else None

  def embed(self, input_ids: jax.Array) -> jax.Array:
    return self.embed_tokens(input_ids)

  def output_embedding(self) -> jax.Array:
    return self.embed_tokens.embedding[...]

  def backbone(self, x, mask, positions, cache):
    if self.project_in is not None:
      x = self.project_in(x)
    x = x + self.embed_positions(positions + POSITION_OFFSET)
    for i, block in enumerate(self.layers):
      x, cache = block(x, mask, cache, i)
    if self.final_norm is not None:
      x = self.final_norm(x)
    if self.project_out is not None:
      x = self.project_out(x)
    return x, cache


def _norm_rules(ours: str, theirs: str) -> tuple[Rule, ...]:
  return (Rule(f"{ours}.scale", f"{theirs}.weight"), Rule(f"{ours}.bias", f"{theirs}.bias"))


def _linear_rules(ours: str, theirs: str) -> tuple[Rule, ...]:
  return (Rule(f"{ours}.kernel", f"{theirs}.weight", transpose),
          Rule(f"{ours}.bias", f"{theirs}.bias"))


_D = "model.decoder"
CHECKPOINT_RULES = (
    Rule("embed_tokens.embedding", f"{_D}.embed_tokens.weight"),
    Rule("embed_positions.embedding", f"{_D}.embed_positions.weight"),
    Rule("project_in.kernel", f"{_D}.project_in.weight", transpose),
    Rule("project_out.kernel", f"{_D}.project_out.weight", transpose),
    *_norm_rules("final_norm", f"{_D}.final_layer_norm"),
    *_norm_rules("layers.{i}.attn_norm", f"{_D}.layers.{{i}}.self_attn_layer_norm"),
    *_norm_rules("layers.{i}.mlp_norm", f"{_D}.layers.{{i}}.final_layer_norm"),
    *(r for ours, theirs in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj"))
      for r in _linear_rules(f"layers.{{i}}.attn.{ours}", f"{_D}.layers.{{i}}.self_attn.{theirs}")),
    *_linear_rules("layers.{i}.mlp.up", f"{_D}.layers.{{i}}.fc1"),
    *_linear_rules("layers.{i}.mlp.down", f"{_D}.layers.{{i}}.fc2"),
)
# Tied head; and a decoder final norm that HF itself drops when the model has none (post-LN, or
# _remove_final_layer_norm). When our model has a final norm these keys are required, not ignored.
IGNORED_KEYS = (r"lm_head\.weight", r"model\.decoder\.final_layer_norm\.(weight|bias)")


# Checkpoints of `OPTModel` (no LM head) lack the 'model.' prefix.
normalize_keys = add_missing_prefix("model.")


FAMILIES = {"opt": Family(OPTConfig.from_hf_config, OPT, CHECKPOINT_RULES, IGNORED_KEYS,
                          normalize_keys)}
