"""GPT-2 family (distilgpt2, gpt2 ... gpt2-xl) as an NNX causal LM.

"Language Models are Unsupervised Multitask Learners", Radford et al. 2019. Pre-LayerNorm blocks, learned
absolute positions, fused qkv in the checkpoint (split on conversion), tied LM head.
"""
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt.models import layers
from hpprompt.models.base import CausalLM
from hpprompt.models.convert.core import Family
from hpprompt.models.convert.core import Rule
from hpprompt.models.convert.core import add_missing_prefix
from hpprompt.models.convert.core import check_config
from hpprompt.models.convert.core import identity


@dataclasses.dataclass(frozen=True)
class GPT2Config:
  vocab_size: int
  max_positions: int
  dim: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  eps: float = 1e-5
  activation: str = "gelu_new"
  dtype: Any = jnp.float32

  @classmethod
  def from_hf_config(cls, hf: dict, dtype=jnp.float32) -> "GPT2Config":
    check_config(hf, {
        "vocab_size": None, "n_positions": None, "n_ctx": None, "n_embd": None, "n_layer": None,
        "n_head": None, "n_inner": None, "layer_norm_epsilon": None,
        "activation_function": tuple(layers.ACTIVATIONS),
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": (False, True),   # only changes fp16 numerics
        "tie_word_embeddings": True,
    }, family="gpt2", ignored={"summary_activation", "summary_first_dropout",
                               "summary_proj_to_labels", "summary_type", "summary_use_proj"})
    dim = hf["n_embd"]
    return cls(vocab_size=hf["vocab_size"], max_positions=hf["n_positions"], dim=dim,
               num_layers=hf["n_layer"], num_heads=hf["n_head"],
               mlp_dim=hf.get("n_inner") or 4 * dim, eps=hf.get("layer_norm_epsilon", 1e-5),
               activation=hf.get("activation_function", "gelu_new"), dtype=dtype)


class GPT2Block(nnx.Module):

  def __init__(self, cfg: GPT2Config, *, rngs: nnx.Rngs):
    self.ln_1 = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)
    self.attn = layers.Attention(cfg.dim, cfg.num_heads, param_dtype=cfg.dtype, rngs=rngs)
    self.ln_2 = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)
    self.mlp = layers.MLP(cfg.dim, cfg.mlp_dim, cfg.activation, param_dtype=cfg.dtype, rngs=rngs)

  def __call__(self, x, mask, cache, layer):
    h, cache = self.attn(self.ln_1(x), mask, cache=cache, layer=layer)
    x = x + h
    return x + self.mlp(self.ln_2(x)), cache


class GPT2(CausalLM):
  """GPT-2 LM: `hidden` is the output of the final LayerNorm; the head is tied to `wte`."""

  def __init__(self, cfg: GPT2Config, *, rngs: nnx.Rngs):
    self.config = cfg
    self.num_layers, self.num_kv_heads = cfg.num_layers, cfg.num_heads
    self.head_dim = cfg.dim // cfg.num_heads
    self.wte = nnx.Embed(cfg.vocab_size, cfg.dim, param_dtype=cfg.dtype, rngs=rngs)
    self.wpe = nnx.Embed(cfg.max_positions, cfg.dim, param_dtype=cfg.dtype, rngs=rngs)
    self.layers = nnx.List([GPT2Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.ln_f = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)

  def embed(self, input_ids: jax.Array) -> jax.Array:
    return self.wte(input_ids)

  def output_embedding(self) -> jax.Array:
    return self.wte.embedding[...]

  def backbone(self, x, mask, positions, cache):
    x = x + self.wpe(positions)
    for i, block in enumerate(self.layers):
      x, cache = block(x, mask, cache, i)
    return self.ln_f(x), cache


def _split_qkv(part: int):
  """c_attn is a Conv1D with weight [D, 3D] (already [in, out]) and bias [3D]: take q, k or v."""
  def f(w):
    n = w.shape[-1] // 3
    return w[..., part * n:(part + 1) * n]
  return f


CHECKPOINT_RULES = (
    Rule("wte.embedding", "transformer.wte.weight"),
    Rule("wpe.embedding", "transformer.wpe.weight"),
    Rule("ln_f.scale", "transformer.ln_f.weight"),
    Rule("ln_f.bias", "transformer.ln_f.bias"),
    *(Rule(f"layers.{{i}}.{ln}.{p}", f"transformer.h.{{i}}.{ln}.{q}")
      for ln in ("ln_1", "ln_2") for p, q in (("scale", "weight"), ("bias", "bias"))),
    *(Rule(f"layers.{{i}}.attn.{name}.{p}", f"transformer.h.{{i}}.attn.c_attn.{q}", _split_qkv(j))
      for j, name in enumerate("qkv") for p, q in (("kernel", "weight"), ("bias", "bias"))),
    # Conv1D weights are stored [in, out]: no transpose.
    Rule("layers.{i}.attn.o.kernel", "transformer.h.{i}.attn.c_proj.weight", identity),
    Rule("layers.{i}.attn.o.bias", "transformer.h.{i}.attn.c_proj.bias"),
    Rule("layers.{i}.mlp.up.kernel", "transformer.h.{i}.mlp.c_fc.weight", identity),
    Rule("layers.{i}.mlp.up.bias", "transformer.h.{i}.mlp.c_fc.bias"),
    Rule("layers.{i}.mlp.down.kernel", "transformer.h.{i}.mlp.c_proj.weight", identity),
    Rule("layers.{i}.mlp.down.bias", "transformer.h.{i}.mlp.c_proj.bias"),
)
# Tied head and the causal-mask buffers of old checkpoints.
IGNORED_KEYS = (r"lm_head\.weight", r"transformer\.h\.\d+\.attn\.(masked_)?bias")


# Checkpoints of `GPT2Model` (no LM head) lack the 'transformer.' prefix.
normalize_keys = add_missing_prefix("transformer.")


FAMILIES = {"gpt2": Family(GPT2Config.from_hf_config, GPT2, CHECKPOINT_RULES, IGNORED_KEYS,
                           normalize_keys)}
