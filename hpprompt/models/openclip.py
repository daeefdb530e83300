"""OpenCLIP checkpoints (open_clip's own key layout and model config) into our NNX `CLIP`.

OpenCLIP ("Reproducible scaling laws for contrastive language-image learning", Cherti et al. 2023;
github.com/mlfoundations/open_clip) trains the same two towers as OpenAI's CLIP (`clip.py`), with
other names: `visual.conv1` (bias-free patch conv), `visual.class_embedding`,
`visual.positional_embedding`, `visual.ln_pre` / `ln_post`, `visual.proj` ([width, embed] used as
x @ proj) and `{visual.,}transformer.resblocks.{i}` blocks of `ln_1`, `attn` (torch
MultiheadAttention: one `in_proj_weight` [3D, D] for q, k, v), `ln_2`, `mlp.c_fc`, `mlp.c_proj`; the
text tower's `token_embedding`, `positional_embedding`, `ln_final`, `text_projection`, and the
`logit_scale`. Its default activation is exact GELU; `quick_gelu: true` (OpenAI weights) selects
QuickGELU. The text features are pooled at argmax(token ids) (the EOT id is the largest), i.e. our
`eos_token_id == 2` pooling, or at the first `eos_id` for `pool_type: "eos"`.

A model directory holds `open_clip_config.json` ({"model_cfg": ..., "preprocess_cfg": ...}, the
Hugging Face hub layout of the laion/* repositories) and `open_clip_model.safetensors` (or
`open_clip_pytorch_model.bin`). Conversion is strict: every config option we would convert wrongly
(layer scale, attentional pooling, qk-norm, timm or HF towers, SigLIP's logit bias, ...) and every
unknown or unused checkpoint key raises `ConversionError`.
"""
import json
import math
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models import clip
from hpprompt.models.clip_image import OPENAI_CLIP_MEAN
from hpprompt.models.clip_image import OPENAI_CLIP_STD
from hpprompt.models.convert import io
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.convert.core import Rule
from hpprompt.models.convert.core import check_config
from hpprompt.models.convert.core import fill
from hpprompt.models.convert.core import transpose

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

_int = lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0
_false = (False, None)
# Options that do not change an evaluation forward pass (training-only or output plumbing).
_IGNORED = frozenset({"patch_dropout", "output_tokens", "pad_id", "timm_model_pretrained",
                      "timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path",
                      "hf_model_pretrained", "hf_proj_type", "hf_pooler_type",
                      "attn_pooler_queries", "attn_pooler_heads", "init_logit_scale",
                      "cast_dtype", "output_dict", "nonscalar_logit_scale"})
_CUSTOM_BLOCK = {"block_type": (None, "default"), "qk_norm": _false, "scaled_cosine_attn": _false,
                 "scale_heads": _false, "scale_attn_inner": _false, "scale_attn": _false,
                 "scale_fc": _false, "act_kwargs": (None,), "norm_kwargs": (None,),
                 "ls_init_value": (None,)}
_VISION_KEYS = {"layers": _int, "width": _int, "head_width": _int,
                "mlp_ratio": lambda v: isinstance(v, (int, float)) and v > 0,
                "patch_size": _int, "image_size": _int, "attentional_pool": _false,
                "no_ln_pre": _false, "pos_embed_type": ("learnable",),
                # LayerNorm is per token, so normalising before or after the class-token pool agree
                "final_ln_after_pool": (True, False), "pool_type": ("tok",),
                "timm_model_name": (None,), **_CUSTOM_BLOCK}
_TEXT_KEYS = {"context_length": _int, "vocab_size": _int, "width": _int, "heads": _int,
              "layers": _int, "mlp_ratio": lambda v: isinstance(v, (int, float)) and v > 0,
              "embed_cls": _false, "eos_id": lambda v: isinstance(v, int), "no_causal_mask": _false,
              "final_ln_after_pool": (True, False), "pool_type": ("argmax", "eos"),
              "proj_bias": _false, "proj_type": ("linear",), "hf_model_name": (None,),
              "hf_tokenizer_name": (None,), "tokenizer_mode": (None,),
              "tokenizer_kwargs": (None,), **_CUSTOM_BLOCK}
_TOP_KEYS = {"embed_dim": _int, "vision_cfg": None, "text_cfg": None, "quick_gelu": (True, False),
             "init_logit_bias": (None,), "custom_text": _false}
_PREPROCESS_KEYS = {"mean": None, "std": None, "interpolation": ("bicubic",),
                    "resize_mode": ("shortest",), "size": None, "fill_color": None}


def _mlp_dim(width: int, ratio: float, where: str) -> int:
  mlp = width * ratio
  if mlp != int(mlp):
    raise ConversionError(f"open_clip {where}: width * mlp_ratio = {mlp} is not an integer.")
  return int(mlp)


def config_from_open_clip(model_cfg: dict, dtype=jnp.float32) -> clip.CLIPConfig:
  """Our `CLIPConfig` for an OpenCLIP model config (e.g. model_configs/ViT-H-14.json)."""
  check_config(model_cfg, _TOP_KEYS, family="open_clip", ignored=_IGNORED)
  v, t = model_cfg.get("vision_cfg"), model_cfg.get("text_cfg")
  if not isinstance(v, dict) or not isinstance(t, dict):
    raise ConversionError("open_clip: vision_cfg and text_cfg must be dicts.")
  check_config(v, _VISION_KEYS, family="open_clip vision_cfg", ignored=_IGNORED)
  check_config(t, _TEXT_KEYS, family="open_clip text_cfg", ignored=_IGNORED)
  act = "quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu"
  v_width, v_head = v.get("width", 768), v.get("head_width", 64)
  image, patch = v.get("image_size", 224), v.get("patch_size", 16)
  if v_width % v_head or image % patch:
    raise ConversionError(f"open_clip vision_cfg: width {v_width} / head_width {v_head} or "
                          f"image_size {image} / patch_size {patch} is not an integer.")
  vision = clip.CLIPVisionConfig(
      image_size=image, patch_size=patch, dim=v_width, num_layers=v.get("layers", 12),
      num_heads=v_width // v_head, mlp_dim=_mlp_dim(v_width, v.get("mlp_ratio", 4.0), "vision_cfg"),
      eps=1e-5, activation=act)
  t_width = t.get("width", 512)
  if t_width % t.get("heads", 8):
    raise ConversionError(f"open_clip text_cfg: width {t_width} is not a multiple of heads.")
  # pool_type 'argmax' is our eos_token_id == 2 pooling (argmax of the ids); 'eos' the first eos_id.
  eos = 2 if t.get("pool_type", "argmax") == "argmax" else t.get("eos_id", 2)
  if eos == 2 and t.get("pool_type") == "eos":
    raise ConversionError("open_clip text_cfg: pool_type 'eos' with eos_id 2 is not supported.")
  text = clip.CLIPTextConfig(
      vocab_size=t.get("vocab_size", 49408), max_positions=t.get("context_length", 77),
      dim=t_width, num_layers=t.get("layers", 12), num_heads=t.get("heads", 8),
      mlp_dim=_mlp_dim(t_width, t.get("mlp_ratio", 4.0), "text_cfg"), eps=1e-5, activation=act,
      eos_token_id=eos)
  return clip.CLIPConfig(text=text, vision=vision, projection_dim=model_cfg["embed_dim"],
                         logit_scale_init=math.log(1 / 0.07), dtype=dtype)


def preprocess_config(preprocess_cfg: dict | None) -> dict:
  """Keyword arguments of `preprocess_image` for OpenCLIP's eval transform (`image_transform`).

  OpenCLIP resizes the shortest side with Pillow's bicubic filter, then center crops with
  torchvision's rounding (`crop_round=True`); mean / std default to OpenAI's.
  """
  cfg = dict(preprocess_cfg or {})
  check_config(cfg, _PREPROCESS_KEYS, family="open_clip preprocess_cfg")
  out = {"mean": tuple(cfg.get("mean", OPENAI_CLIP_MEAN)), "std": tuple(cfg.get("std",
                                                                              OPENAI_CLIP_STD)),
         "backend": "pil", "crop_round": True}
  if "size" in cfg:
    size = cfg["size"]
    size = size if isinstance(size, int) else tuple(size)
    if isinstance(size, tuple) and (len(size) != 2 or size[0] != size[1]):
      raise ConversionError(f"open_clip preprocess_cfg: only square sizes, got {size!r}.")
    size = size if isinstance(size, int) else size[0]
    out.update(size=size, crop_size=size)
  return out


def _qkv(part: int):
  def take(w: np.ndarray) -> np.ndarray:
    d = w.shape[0] // 3
    x = w[part * d:(part + 1) * d]
    return x.T if x.ndim == 2 else x
  return take


def _norm(ours: str, theirs: str) -> tuple[Rule, ...]:
  return (Rule(f"{ours}.scale", f"{theirs}.weight"), Rule(f"{ours}.bias", f"{theirs}.bias"))


def _blocks(ours: str, theirs: str) -> tuple[Rule, ...]:
  o, t = f"{ours}.layers.{{i}}", f"{theirs}.resblocks.{{i}}"
  rules = [*_norm(f"{o}.layer_norm1", f"{t}.ln_1"), *_norm(f"{o}.layer_norm2", f"{t}.ln_2")]
  for part, name in enumerate("qkv"):
    rules += [Rule(f"{o}.attn.{name}.kernel", f"{t}.attn.in_proj_weight", _qkv(part)),
              Rule(f"{o}.attn.{name}.bias", f"{t}.attn.in_proj_bias", _qkv(part))]
  for a, b in (("attn.o", "attn.out_proj"), ("mlp.up", "mlp.c_fc"), ("mlp.down", "mlp.c_proj")):
    rules += [Rule(f"{o}.{a}.kernel", f"{t}.{b}.weight", transpose),
              Rule(f"{o}.{a}.bias", f"{t}.{b}.bias")]
  return tuple(rules)


CHECKPOINT_RULES = (
    Rule("text_model.token_embedding.embedding", "token_embedding.weight"),
    Rule("text_model.position_embedding.embedding", "positional_embedding"),
    *_blocks("text_model", "transformer"),
    *_norm("text_model.final_layer_norm", "ln_final"),
    Rule("vision_model.class_embedding", "visual.class_embedding"),
    Rule("vision_model.patch_embedding.kernel", "visual.conv1.weight", clip._patch_kernel),
    Rule("vision_model.position_embedding.embedding", "visual.positional_embedding"),
    *_norm("vision_model.pre_layrnorm", "visual.ln_pre"),
    *_blocks("vision_model", "visual.transformer"),
    *_norm("vision_model.post_layernorm", "visual.ln_post"),
    Rule("text_projection.kernel", "text_projection"),       # used as x @ W: already [in, out]
    Rule("visual_projection.kernel", "visual.proj"),
    Rule("logit_scale", "logit_scale", lambda x: np.asarray(x).reshape(())),
)
IGNORED_KEYS = (r"attn_mask", r"(visual\.)?transformer\.resblocks\.\d+\.attn\.in_proj\.none",)


def is_open_clip_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, CONFIG_FILE))


def read_dir_config(model_dir: str) -> tuple[dict, dict]:
  """(model_cfg, preprocess_cfg) of an OpenCLIP model directory."""
  path = os.path.join(model_dir, CONFIG_FILE)
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ConversionError(f"{path}: unreadable OpenCLIP config ({e}).") from e
  if not isinstance(data, dict) or not isinstance(data.get("model_cfg"), dict):
    raise ConversionError(f"{path}: expected {{'model_cfg': ..., 'preprocess_cfg': ...}}.")
  return data["model_cfg"], data.get("preprocess_cfg") or {}


def convert(model_cfg: dict, tensors: dict, *, dtype=jnp.float32,
            source: str = "open_clip checkpoint") -> clip.CLIP:
  """Our `CLIP` filled from an OpenCLIP state dict (names as in `CLIP.state_dict()`)."""
  cfg = config_from_open_clip(model_cfg, dtype)
  return fill(lambda: clip.CLIP(cfg, rngs=nnx.Rngs(0)), tensors, CHECKPOINT_RULES,
              ignore=IGNORED_KEYS, dtype=dtype, source=source)


def load(model_dir: str, *, dtype=jnp.float32) -> tuple[clip.CLIP, dict]:
  """(model, preprocess kwargs) from an OpenCLIP model directory."""
  model_cfg, preprocess_cfg = read_dir_config(model_dir)
  for name in WEIGHT_FILES:
    path = os.path.join(model_dir, name)
    if os.path.exists(path):
      tensors = (io.read_safetensors(path) if name.endswith(".safetensors")
                 else io.read_torch_bin(path))
      break
  else:
    raise ConversionError(f"{model_dir}: no {' or '.join(WEIGHT_FILES)}.")
  return (convert(model_cfg, tensors, dtype=dtype, source=model_dir),
          preprocess_config(preprocess_cfg))
