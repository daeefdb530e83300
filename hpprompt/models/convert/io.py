"""Reading checkpoints into flat {name: array} dicts: safetensors (read lazily), PyTorch .bin."""
import dataclasses
import glob
import json
import math
import os
import struct
import warnings

import jax.numpy as jnp
import numpy as np

from hpprompt.models.convert.core import ConversionError


# safetensors dtype names -> numpy dtypes (bfloat16 from jax's ml_dtypes); float8 is refused.
SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": jnp.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U64": np.uint64,
    "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
WIDENED = ("BF16",)                 # read as float32 (exactly), as safetensors' flax reader did


@dataclasses.dataclass(frozen=True)
class StoredTensor:
  """One tensor of a safetensors file, read from disk each time it is converted (`np.asarray(t)`).

  `read_safetensors` returns these instead of arrays so that a converter holds one checkpoint
  tensor at a time beside the converted parameters (the whole file in memory doubled the peak).
  """
  path: str
  offset: int                      # absolute byte offset of the data in the file
  stored: str                      # safetensors dtype name, e.g. "F32"
  shape: tuple[int, ...]

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(np.float32 if self.stored in WIDENED else SAFETENSORS_DTYPES[self.stored])

  def __array__(self, dtype=None, copy=None):
    del copy                       # always a fresh array
    count = math.prod(self.shape)
    with open(self.path, "rb") as f:
      f.seek(self.offset)
      data = np.fromfile(f, dtype=SAFETENSORS_DTYPES[self.stored], count=count)
    if data.size != count:
      raise ConversionError(f"{self.path}: ends inside a tensor; the file changed or is truncated.")
    data = data.reshape(self.shape).astype(self.dtype, copy=False)
    return data if dtype is None else data.astype(dtype, copy=False)


def read_safetensors(path: str) -> dict[str, StoredTensor]:
  """Name -> `StoredTensor` (read on use) of a safetensors file; the header is checked now."""
  if not os.path.exists(path):
    raise ConversionError(f"{path}: file not found (named in model.safetensors.index.json).")
  try:
    return _read_safetensors_header(path)
  except Exception as e:  # noqa: BLE001  (truncated / not safetensors: json, struct, value errors)
    reason = str(e) if isinstance(e, ConversionError) else f"{type(e).__name__}: {e}"
    reason = " ".join(reason.split())[:200]
    raise ConversionError(f"{path}: not a readable safetensors file ({reason}); it may be "
                          "truncated: download or save it again.") from e


def _read_safetensors_header(path: str) -> dict[str, StoredTensor]:
  """The format: u64 little-endian header size N, N bytes of JSON {name: {dtype, shape,
  data_offsets: [begin, end]}, "__metadata__": {...}}, then the data (offsets relative to it)."""
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    (header_size,) = struct.unpack("<Q", f.read(8))
    if header_size > size - 8:
      raise ConversionError(f"header of {header_size} bytes in a file of {size}")
    header = json.loads(f.read(header_size))
  start = 8 + header_size
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    stored, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
    if stored not in SAFETENSORS_DTYPES:
      raise ConversionError(f"tensor {name!r} has unsupported dtype {stored}")
    nbytes = math.prod(shape) * np.dtype(SAFETENSORS_DTYPES[stored]).itemsize
    if min(shape, default=0) < 0 or not 0 <= begin <= end or end - begin != nbytes:
      raise ConversionError(f"tensor {name!r}: offsets {begin}..{end} do not hold shape {shape}")
    if start + end > size:
      raise ConversionError(f"tensor {name!r} ends at byte {start + end}, the file has {size}")
    out[name] = StoredTensor(path, start + begin, stored, shape)
  return out


def read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # noqa: PLC0415
  except ImportError as e:
    raise ConversionError(f"{path}: reading a PyTorch .bin checkpoint needs torch "
                          "(pip install torch==2.13.0), or convert it to model.safetensors.") from e
  try:   # weights_only: never runs pickled code; anything but plain tensors is refused
    with warnings.catch_warnings():   # e.g. "Detected pickle protocol 101": the error says it all
      warnings.simplefilter("ignore")
      state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001  (torch's message suggests unsafe loading: not repeated)
    raise ConversionError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}); it "
                          "is truncated, broken, or holds objects other than tensors, which "
                          "hpprompt never unpickles. Use model.safetensors instead.") from None
  if not isinstance(state, dict) or not all(hasattr(v, "numpy") for v in state.values()):
    raise ConversionError(f"{path}: expected a dict of tensors (a state_dict), got "
                          f"{type(state).__name__}.")
  return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def read_checkpoint(model_dir: str) -> dict[str, "np.ndarray | StoredTensor"]:
  """All tensors of a Hugging Face model directory (single or sharded safetensors, or .bin);
  safetensors ones as `StoredTensor`s, read when converted (`np.asarray`)."""
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
