"""`load_clip(name)`: a CLIP for textual inversion from a hub name, a local directory, or 'tiny'.

- An OpenCLIP directory (`open_clip_config.json` + `open_clip_model.safetensors`, the layout of the
  laion/* hub repositories) goes through `openclip.load` and OpenCLIP's preprocessing.
- A Hugging Face CLIP directory (`config.json` with model_type 'clip') goes through `hub.load_model`
  and `CLIPImageProcessor`'s preprocessing.
- A hub name is downloaded first (`hub.resolve`), then loaded as above; OpenCLIP files win when a
  repository has both, as the papers used OpenCLIP (methods.md §2.3, baselines.md §2.2).
- 'tiny' is a random 2-layer CLIP with the real vocabulary: an offline smoke test, no signal.

The tokenizer is the bundled CLIP BPE (`clip_tokenizer`: ids equal to open_clip's, which PIN's
reward runs) for OpenCLIP directories and 'tiny', though the laion/* repositories also carry a
Hugging Face `tokenizer.json` (it skips ftfy and HTML unescaping); a Hugging Face CLIP directory's
own `tokenizer.json` otherwise. Decoding always turns `</w>` into spaces, as `CLIPTokenizerFast`
does.
"""
import os

import jax.numpy as jnp
from flax import nnx

from hpprompt.models import clip
from hpprompt.models import clip_tokenizer
from hpprompt.models import hub
from hpprompt.models import openclip
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.tokenizer import Tokenizer

PAPER_CLIP = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"   # OpenCLIP ViT-H-14 laion2b_s32b_b79k

TINY = clip.CLIPConfig(
    text=clip.CLIPTextConfig(max_positions=77, dim=32, num_layers=2, num_heads=4, mlp_dim=64,
                             activation="gelu"),
    vision=clip.CLIPVisionConfig(image_size=32, patch_size=8, dim=32, num_layers=2, num_heads=4,
                                 mlp_dim=64, activation="gelu"),
    projection_dim=32)


def _tokenizer(model_dir: str | None) -> Tokenizer:
  if (model_dir and not openclip.is_open_clip_dir(model_dir)
      and os.path.exists(os.path.join(model_dir, "tokenizer.json"))):
    return clip_tokenizer.clip_decode(Tokenizer.from_dir(model_dir))
  return clip_tokenizer.clip_tokenizer()


def load_clip(name: str, *, dtype=jnp.float32, seed: int = 0) -> tuple[clip.CLIP, Tokenizer, dict]:
  """(model, tokenizer, keyword arguments of `preprocess_image`)."""
  if name == "tiny":
    return (clip.CLIP(TINY, rngs=nnx.Rngs(seed)), clip_tokenizer.clip_tokenizer(), {})
  model_dir = hub.resolve(name)
  if openclip.is_open_clip_dir(model_dir):
    model, preprocess = openclip.load(model_dir, dtype=dtype)
  elif os.path.exists(os.path.join(model_dir, "config.json")):
    model, preprocess = hub.load_model(model_dir, dtype=dtype), {}
    if not isinstance(model, clip.CLIP):
      raise ConversionError(f"{name}: not a CLIP model ({type(model).__name__}).")
  else:
    raise ConversionError(f"{model_dir}: neither an OpenCLIP directory ({openclip.CONFIG_FILE}) "
                          "nor a Hugging Face one (config.json).")
  return model, _tokenizer(model_dir), preprocess
