"""Reading checkpoints into flat {name: np.ndarray} dicts: safetensors, PyTorch .bin, GGUF."""
import glob
import json
import os

import numpy as np

from hpprompt.models.convert.core import ConversionError


def read_safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors.numpy import load_file   # noqa: PLC0415
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
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def read_checkpoint(model_dir: str) -> dict[str, np.ndarray]:
  """All tensors of a Hugging Face model directory (single or sharded safetensors, or .bin)."""
  index = os.path.join(model_dir, "model.safetensors.index.json")
  if os.path.exists(index):
    with open(index) as f:
      files = sorted(set(json.load(f)["weight_map"].values()))
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
  with open(path) as f:
    return json.load(f)
