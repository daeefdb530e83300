"""CLIP (openai/clip-vit-*, laion/CLIP-ViT-*) as NNX: a causal text Transformer and a ViT.

"Learning Transferable Visual Models From Natural Language Supervision", Radford et al. 2021.
Both towers are pre-LayerNorm Transformers with learned absolute positions. The text tower attends
causally (plus a padding mask), applies a final LayerNorm and pools the hidden state at the EOT
token; the vision tower embeds non-overlapping patches (a bias-free conv, done here as reshape +
matmul), prepends a class token, applies `pre_layrnorm` (Hugging Face's spelling), and pools the
class token through `post_layernorm`. Bias-free linear projections map both pooled states into the
shared embedding space, where logits are exp(logit_scale) * cosine similarity.

Images are NCHW float arrays [B, C, H, W] like Hugging Face's `pixel_values`; `preprocess_image`
turns a uint8 HWC image into one [3, 224, 224] such array.
"""
import dataclasses
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models import layers
from hpprompt.models.clip_image import OPENAI_CLIP_MEAN  # noqa: F401 (re-export)
from hpprompt.models.clip_image import OPENAI_CLIP_STD  # noqa: F401
from hpprompt.models.clip_image import preprocess_image  # noqa: F401
from hpprompt.models.clip_image import resize_bicubic  # noqa: F401
from hpprompt.models.cache import make_mask
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.convert.core import Family
from hpprompt.models.convert.core import Rule
from hpprompt.models.convert.core import check_config
from hpprompt.models.convert.core import transpose

Array = jax.Array


# Hugging Face's CLIPTextConfig / CLIPVisionConfig defaults (transformers 5), in their key names.
HF_TEXT_DEFAULTS = {
    "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
    "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5, "eos_token_id": 49407,
}
HF_VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 32,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}

# Keys of old (transformers 4.x) sub-configs that never change a CLIP forward pass: generation
# settings and bookkeeping. `projection_dim` inside a sub-config is only read by
# CLIP{Text,Vision}ModelWithProjection; CLIPModel uses the top-level one.
_IGNORED_SUB_KEYS = frozenset({
    "projection_dim", "use_bfloat16", "tf_legacy_loss", "tie_word_embeddings", "_commit_hash",
    "_attn_implementation_internal", "bad_words_ids", "begin_suppress_tokens", "diversity_penalty",
    "early_stopping", "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty",
    "forced_bos_token_id", "forced_eos_token_id", "length_penalty", "no_repeat_ngram_size",
    "num_beam_groups", "num_return_sequences", "output_scores", "remove_invalid_values",
    "return_dict_in_generate", "suppress_tokens", "typical_p",
})
_positive_int = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
_ENCODER_KEYS = {
    "hidden_size": _positive_int, "intermediate_size": _positive_int,
    "num_hidden_layers": _positive_int, "num_attention_heads": _positive_int,
    "hidden_act": tuple(layers.ACTIVATIONS), "layer_norm_eps": lambda v: isinstance(v, float),
}
_TEXT_KEYS = {**_ENCODER_KEYS, "vocab_size": _positive_int,
              "max_position_embeddings": _positive_int}
_VISION_KEYS = {**_ENCODER_KEYS, "num_channels": _positive_int, "image_size": _positive_int,
                "patch_size": _positive_int}
_TOP_KEYS = {"text_config": None, "vision_config": None, "text_config_dict": None,
             "vision_config_dict": None, "projection_dim": _positive_int,
             "logit_scale_init_value": None}


def _sub_config(hf: dict, name: str, defaults: dict) -> dict:
  """A sub-config as Hugging Face resolves it: `<name>_dict`, when given, wins over `<name>`.

  CLIPConfig replaces every key of `text_config` by `CLIPTextConfig(**text_config_dict)`, i.e. the
  class defaults plus `text_config_dict` (old LAION configs rely on this); missing keys take the
  defaults too.
  """
  sub = hf.get(name) or {}
  override = hf.get(name + "_dict")
  if not isinstance(sub, dict) or not isinstance(override, (dict, type(None))):
    raise ConversionError(f"clip: {name} must be a dict.")
  if override is not None:
    return {**sub, **defaults, **override}
  return {**defaults, **sub}


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  vocab_size: int = 49408
  max_positions: int = 77
  dim: int = 512
  num_layers: int = 12
  num_heads: int = 8
  mlp_dim: int = 2048
  eps: float = 1e-5
  activation: str = "quick_gelu"
  eos_token_id: int = 49407       # 2 selects the legacy pooling at argmax(input_ids)

  @classmethod
  def from_hf_config(cls, hf: dict) -> "CLIPTextConfig":
    check_config(hf, _TEXT_KEYS, family="clip text_config", ignored=_IGNORED_SUB_KEYS)
    eos = hf["eos_token_id"]
    if not isinstance(eos, int) or isinstance(eos, bool):
      raise ConversionError(f"clip text_config: unsupported eos_token_id={eos!r} (need one int).")
    return cls(vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
               dim=hf["hidden_size"], num_layers=hf["num_hidden_layers"],
               num_heads=hf["num_attention_heads"], mlp_dim=hf["intermediate_size"],
               eps=hf["layer_norm_eps"], activation=hf["hidden_act"], eos_token_id=eos)


@dataclasses.dataclass(frozen=True)
class CLIPVisionConfig:
  image_size: int = 224
  patch_size: int = 32
  num_channels: int = 3
  dim: int = 768
  num_layers: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  eps: float = 1e-5
  activation: str = "quick_gelu"

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2

  @classmethod
  def from_hf_config(cls, hf: dict) -> "CLIPVisionConfig":
    check_config(hf, _VISION_KEYS, family="clip vision_config", ignored=_IGNORED_SUB_KEYS)
    if hf["image_size"] % hf["patch_size"]:
      raise ConversionError(f"clip vision_config: image_size={hf['image_size']} is not a multiple "
                            f"of patch_size={hf['patch_size']}.")
    return cls(image_size=hf["image_size"], patch_size=hf["patch_size"],
               num_channels=hf["num_channels"], dim=hf["hidden_size"],
               num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
               mlp_dim=hf["intermediate_size"], eps=hf["layer_norm_eps"],
               activation=hf["hidden_act"])


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
  text: CLIPTextConfig = CLIPTextConfig()
  vision: CLIPVisionConfig = CLIPVisionConfig()
  projection_dim: int = 512
  logit_scale_init: float = 2.6592   # log(1 / 0.07), only used by random init
  dtype: Any = jnp.float32

  @classmethod
  def from_hf_config(cls, hf: dict, dtype=jnp.float32) -> "CLIPConfig":
    """Strict: unknown keys at the top level or in either sub-config raise `ConversionError`."""
    check_config(hf, _TOP_KEYS, family="clip", ignored=_IGNORED_SUB_KEYS)
    text = CLIPTextConfig.from_hf_config(_sub_config(hf, "text_config", HF_TEXT_DEFAULTS))
    vision = CLIPVisionConfig.from_hf_config(
        _sub_config(hf, "vision_config", HF_VISION_DEFAULTS))
    return cls(text=text, vision=vision, projection_dim=hf.get("projection_dim", 512),
               logit_scale_init=hf.get("logit_scale_init_value", 2.6592), dtype=dtype)


class CLIPOutput(NamedTuple):
  logits_per_image: Array   # [B_image, B_text] = exp(logit_scale) * cos(image, text)
  logits_per_text: Array    # [B_text, B_image]
  text_embeds: Array        # [B_text, P], L2-normalised
  image_embeds: Array       # [B_image, P], L2-normalised


class EncoderLayer(nnx.Module):
  """Pre-LN block: x += attn(LN1(x)); x += mlp(LN2(x))."""

  def __init__(self, dim: int, num_heads: int, mlp_dim: int, act: str, eps: float, *, dtype,
               rngs: nnx.Rngs):
    self.layer_norm1 = layers.layer_norm(dim, eps, param_dtype=dtype, rngs=rngs)
    self.attn = layers.Attention(dim, num_heads, param_dtype=dtype, rngs=rngs)
    self.layer_norm2 = layers.layer_norm(dim, eps, param_dtype=dtype, rngs=rngs)
    self.mlp = layers.MLP(dim, mlp_dim, act, param_dtype=dtype, rngs=rngs)

  def __call__(self, x: Array, mask: Array | None) -> Array:
    x = x + self.attn(self.layer_norm1(x), mask)[0]
    return x + self.mlp(self.layer_norm2(x))


def _layers(cfg, dtype, rngs) -> nnx.List:
  return nnx.List([EncoderLayer(cfg.dim, cfg.num_heads, cfg.mlp_dim, cfg.activation, cfg.eps,
                                dtype=dtype, rngs=rngs) for _ in range(cfg.num_layers)])


class TextTransformer(nnx.Module):
  """Token + position embeddings, causal pre-LN blocks, final LayerNorm."""

  def __init__(self, cfg: CLIPTextConfig, *, dtype, rngs: nnx.Rngs):
    self.config = cfg
    self.token_embedding = nnx.Embed(cfg.vocab_size, cfg.dim, param_dtype=dtype, rngs=rngs)
    self.position_embedding = nnx.Embed(cfg.max_positions, cfg.dim, param_dtype=dtype, rngs=rngs)
    self.layers = _layers(cfg, dtype, rngs)
    self.final_layer_norm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=dtype, rngs=rngs)

  def __call__(self, x: Array, attention_mask: Array, positions: Array | None = None) -> Array:
    """x: token embeddings [B, T, D]; attention_mask [B, T] -> final hidden states [B, T, D]."""
    t = x.shape[1]
    if t > self.config.max_positions:
      raise ValueError(f"sequence length {t} exceeds the {self.config.max_positions} positions "
                       "of this CLIP text model.")
    mask, _ = make_mask(attention_mask, causal=True)
    if positions is None:   # Hugging Face and OpenCLIP use slots 0..T-1, padding or not
      positions = jnp.arange(t)[None]
    x = x + self.position_embedding(positions)
    for layer in self.layers:
      x = layer(x, mask)
    return self.final_layer_norm(x)


class VisionTransformer(nnx.Module):
  """Patch embedding (bias-free conv as a matmul), class token, positions, pre-LN ViT."""

  def __init__(self, cfg: CLIPVisionConfig, *, dtype, rngs: nnx.Rngs):
    self.config = cfg
    patch_dim = cfg.num_channels * cfg.patch_size ** 2
    # Kernel [C * p * p, D] (channel-major, like the torch conv weight [D, C, p, p] flattened).
    self.patch_embedding = nnx.Linear(patch_dim, cfg.dim, use_bias=False, param_dtype=dtype,
                                      rngs=rngs)
    self.class_embedding = nnx.Param(
        jax.random.normal(rngs.params(), (cfg.dim,), dtype) * cfg.dim ** -0.5)
    self.position_embedding = nnx.Embed(cfg.num_patches + 1, cfg.dim, param_dtype=dtype,
                                        rngs=rngs)
    self.pre_layrnorm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=dtype, rngs=rngs)
    self.layers = _layers(cfg, dtype, rngs)
    self.post_layernorm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=dtype, rngs=rngs)

  def patchify(self, pixel_values: Array) -> Array:
    """[B, C, H, W] -> [B, (H/p) * (W/p), C * p * p], patches in row-major order."""
    cfg = self.config
    b, c, h, w = pixel_values.shape
    if (c, h, w) != (cfg.num_channels, cfg.image_size, cfg.image_size):
      raise ValueError(f"pixel_values must be NCHW [B, {cfg.num_channels}, {cfg.image_size}, "
                       f"{cfg.image_size}], got {pixel_values.shape}.")
    p = cfg.patch_size
    x = pixel_values.reshape(b, c, h // p, p, w // p, p).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)

  def __call__(self, pixel_values: Array) -> tuple[Array, Array]:
    """pixel_values [B, C, H, W] -> (last hidden states [B, 1 + N, D], pooled [B, D])."""
    x = self.patch_embedding(self.patchify(pixel_values))
    cls = jnp.broadcast_to(self.class_embedding[...].astype(x.dtype), (x.shape[0], 1, x.shape[2]))
    x = jnp.concatenate([cls, x], axis=1)
    x = x + self.position_embedding.embedding[...].astype(x.dtype)[None]
    x = self.pre_layrnorm(x)
    for layer in self.layers:
      x = layer(x, None)
    return x, self.post_layernorm(x[:, 0])


class CLIP(nnx.Module):
  """Hugging Face `CLIPModel`: text and vision towers, projections and logit scale.

  `text_features` / `image_features` give the projected (unnormalised) embeddings, like
  `get_text_features` / `get_image_features`; calling the model gives the scaled cosine logits.
  """

  def __init__(self, cfg: CLIPConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    self.text_model = TextTransformer(cfg.text, dtype=cfg.dtype, rngs=rngs)
    self.vision_model = VisionTransformer(cfg.vision, dtype=cfg.dtype, rngs=rngs)
    projection = lambda d: nnx.Linear(d, cfg.projection_dim, use_bias=False,
                                      param_dtype=cfg.dtype, rngs=rngs)
    self.text_projection = projection(cfg.text.dim)
    self.visual_projection = projection(cfg.vision.dim)
    self.logit_scale = nnx.Param(jnp.asarray(cfg.logit_scale_init, cfg.dtype))

  def embed(self, input_ids: Array) -> Array:
    """Token embeddings [B, T, D] (what soft prompts and PEZ replace)."""
    return self.text_model.token_embedding(input_ids)

  def input_embedding(self) -> Array:
    """The token embedding matrix [V, D] (PEZ projects prompts onto its rows)."""
    return self.text_model.token_embedding.embedding[...]

  def eot_index(self, input_ids: Array) -> Array:
    """Pooling position [B] of each row, as Hugging Face picks it.

    Configs with eos_token_id == 2 (written before transformers PR #24773) take argmax(input_ids),
    i.e. the highest id, which is EOT (49407) in the CLIP vocabulary; others take the first
    position of eos_token_id (0 if a row has none).
    """
    eos = self.config.text.eos_token_id
    if eos == 2:
      return jnp.argmax(input_ids, axis=-1)
    return jnp.argmax(input_ids == eos, axis=-1)

  def text_hidden(self, input_ids: Array | None = None, *, inputs_embeds: Array | None = None,
                  attention_mask: Array | None = None, positions: Array | None = None) -> Array:
    """Final-LayerNorm hidden states [B, T, D_text] for ids or embeddings [B, T(, D)]."""
    if (input_ids is None) == (inputs_embeds is None):
      raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
    x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
    x = x.astype(self.config.dtype)
    if attention_mask is None:
      attention_mask = jnp.ones(x.shape[:2], bool)
    return self.text_model(x, attention_mask, positions)

  def text_features(self, input_ids: Array | None = None, *, inputs_embeds: Array | None = None,
                    attention_mask: Array | None = None, eot_index: Array | None = None,
                    positions: Array | None = None) -> Array:
    """Projected text embeddings [B, P] (not normalised), pooled at the EOT token.

    Args:
      input_ids: [B, T] token ids, e.g. `[SOT] tokens [EOT] pad...` (right padding).
      inputs_embeds: [B, T, D_text] instead of ids (soft prompts, PEZ); needs `eot_index`.
      attention_mask: [B, T], 1 for real tokens (default all). Combined with the causal mask.
      eot_index: [B] pooling positions; default `self.eot_index(input_ids)`.
      positions: [B, T] position ids; default 0..T-1 as in Hugging Face.
    """
    if eot_index is None:
      if input_ids is None:
        raise ValueError("`eot_index` is required with `inputs_embeds` (the EOT position).")
      eot_index = self.eot_index(input_ids)
    hidden = self.text_hidden(input_ids, inputs_embeds=inputs_embeds,
                              attention_mask=attention_mask, positions=positions)
    pooled = hidden[jnp.arange(hidden.shape[0]), eot_index]
    return self.text_projection(pooled)

  def image_features(self, pixel_values: Array) -> Array:
    """Projected image embeddings [B, P] (not normalised) for NCHW pixel_values [B, C, H, W]."""
    _, pooled = self.vision_model(pixel_values.astype(self.config.dtype))
    return self.visual_projection(pooled)

  def __call__(self, input_ids: Array, pixel_values: Array,
               attention_mask: Array | None = None) -> CLIPOutput:
    """Scaled cosine logits between every image and every text, as in `CLIPModel.forward`."""
    normalize = lambda v: v / jnp.sqrt(jnp.sum(v * v, axis=-1, keepdims=True))
    image = normalize(self.image_features(pixel_values))
    text = normalize(self.text_features(input_ids, attention_mask=attention_mask))
    logits_per_text = (text @ image.T) * jnp.exp(self.logit_scale[...]).astype(text.dtype)
    return CLIPOutput(logits_per_text.T, logits_per_text, text, image)


# --------------------------------------------------------------------------------------------
# Checkpoint conversion.


def _patch_kernel(w: np.ndarray) -> np.ndarray:
  """Conv weight [D, C, p, p] -> kernel [C * p * p, D]."""
  return w.reshape(w.shape[0], -1).T


def _norm_rules(ours: str, theirs: str) -> tuple[Rule, ...]:
  return (Rule(f"{ours}.scale", f"{theirs}.weight"), Rule(f"{ours}.bias", f"{theirs}.bias"))


def _encoder_rules(tower: str) -> tuple[Rule, ...]:
  ours, theirs = f"{tower}.layers.{{i}}", f"{tower}.encoder.layers.{{i}}"
  linears = [("attn.q", "self_attn.q_proj"), ("attn.k", "self_attn.k_proj"),
             ("attn.v", "self_attn.v_proj"), ("attn.o", "self_attn.out_proj"),
             ("mlp.up", "mlp.fc1"), ("mlp.down", "mlp.fc2")]
  return (
      *_norm_rules(f"{ours}.layer_norm1", f"{theirs}.layer_norm1"),
      *_norm_rules(f"{ours}.layer_norm2", f"{theirs}.layer_norm2"),
      *(r for a, b in linears for r in (
          Rule(f"{ours}.{a}.kernel", f"{theirs}.{b}.weight", transpose),
          Rule(f"{ours}.{a}.bias", f"{theirs}.{b}.bias"))),
  )


CHECKPOINT_RULES = (
    Rule("text_model.token_embedding.embedding", "text_model.embeddings.token_embedding.weight"),
    Rule("text_model.position_embedding.embedding",
         "text_model.embeddings.position_embedding.weight"),
    *_encoder_rules("text_model"),
    *_norm_rules("text_model.final_layer_norm", "text_model.final_layer_norm"),
    Rule("vision_model.class_embedding", "vision_model.embeddings.class_embedding"),
    Rule("vision_model.patch_embedding.kernel", "vision_model.embeddings.patch_embedding.weight",
         _patch_kernel),
    Rule("vision_model.position_embedding.embedding",
         "vision_model.embeddings.position_embedding.weight"),
    *_norm_rules("vision_model.pre_layrnorm", "vision_model.pre_layrnorm"),
    *_encoder_rules("vision_model"),
    *_norm_rules("vision_model.post_layernorm", "vision_model.post_layernorm"),
    Rule("text_projection.kernel", "text_projection.weight", transpose),
    Rule("visual_projection.kernel", "visual_projection.weight", transpose),
    Rule("logit_scale", "logit_scale"),
)
# position_ids buffers of older checkpoints.
IGNORED_KEYS = (r"(text|vision)_model\.embeddings\.position_ids",)

FAMILIES = {"clip": Family(CLIPConfig.from_hf_config, CLIP, CHECKPOINT_RULES, IGNORED_KEYS)}
