"""Reading checkpoints into flat {name: np.ndarray} dicts: safetensors, PyTorch .bin, GGUF."""
import glob
import json
import os

import numpy as np

from hpprompt.models.convert.core import ConversionError


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    return _read_safetensors(path)
  except ConversionError:
    raise
  except Exception as e:  # noqa: BLE001  (truncated / not safetensors: the reader's many kinds)
    raise ConversionError(f"{path}: not a readable safetensors file ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}); it may be truncated: download or "
                          "save it again.") from e


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file   # noqa: PLC0415
  if not os.path.exists(path):
    raise ConversionError(f"{path}: file not found (named in model.safetensors.index.json).")
  try:
    return dict(load_file(path))
  except TypeError:  # bfloat16 tensors: numpy cannot hold them; go through flax/jax-friendly path
    from safetensors import safe_open  # noqa: PLC0415
    out = {}
    with safe_open(path, framework="flax") as f:
      for k in f.keys():
        out[k] = np.asarray(f.get_tensor(k), dtype=np.float32)
    return out


def read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # noqa: PLC0415
  except ImportError as e:
    raise ConversionError(f"{path}: reading a PyTorch .bin checkpoint needs torch "
                          "(pip install torch==2.13.0), or convert it to model.safetensors.") from e
  try:   # weights_only: never runs pickled code; anything but plain tensors is refused
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001  (torch's message suggests unsafe loading: not repeated)
    raise ConversionError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}); it "
                          "is truncated, broken, or holds objects other than tensors, which "
                          "hpprompt never unpickles. Use model.safetensors instead.") from None
  if not isinstance(state, dict) or not all(hasattr(v, "numpy") for v in state.values()):
    raise ConversionError(f"{path}: expected a dict of tensors (a state_dict), got "
                          f"{type(state).__name__}.")
  return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def read_checkpoint(model_dir: str) -> dict[str, np.ndarray]:
  """All tensors of a Hugging Face model directory (single or sharded safetensors, or .bin)."""
  index = os.path.join(model_dir, "model.safetensors.index.json")
  if os.path.exists(index):
    files = sorted(set(_read_json(index).get("weight_map", {}).values()))
    out = {}
    for name in files:
      out.update(read_safetensors(os.path.join(model_dir, name)))
    return out
  single = os.path.join(model_dir, "model.safetensors")
  if os.path.exists(single):
    return read_safetensors(single)
  bins = sorted(glob.glob(os.path.join(model_dir, "pytorch_model*.bin")))
  if bins:
    out = {}
    for name in bins:
      out.update(read_torch_bin(name))
    return out
  raise ConversionError(f"{model_dir}: no model.safetensors, model.safetensors.index.json or "
                        "pytorch_model.bin found.")


def read_config(model_dir: str) -> dict:
  path = os.path.join(model_dir, "config.json")
  if not os.path.exists(path):
    raise ConversionError(f"{model_dir}: no config.json (is this a Hugging Face model directory?).")
  config = _read_json(path)
  if not isinstance(config, dict):
    raise ConversionError(f"{path}: expected a JSON object, got {type(config).__name__}.")
  return config


def _read_json(path: str):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ConversionError(f"{path}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno}).") \
        from None
  except UnicodeDecodeError as e:
    raise ConversionError(f"{path}: not UTF-8 text (byte {e.start}).") from None
