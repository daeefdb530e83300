"""safetensors reading: our lazy header reader against the safetensors package (Rust) on random
tensors of every dtype, and its errors on truncated or malformed files."""
import json
import struct

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.flax import load_file
from safetensors.flax import save_file

from hpprompt.models.convert import io
from hpprompt.models.convert.core import ConversionError

DTYPES = (np.float32, np.float64, np.float16, jnp.bfloat16, np.int64, np.int32, np.int16, np.int8,
          np.uint8, np.bool_)


def _random(rng, dtype, shape):
  if np.issubdtype(dtype, np.integer):
    return rng.integers(-100 if np.issubdtype(dtype, np.signedinteger) else 0, 100, shape, dtype)
  if dtype == np.bool_:
    return rng.random(shape) < 0.5
  return (rng.standard_normal(shape) * 3).astype(dtype)


def test_matches_safetensors_package(tmp_path):
  rng = np.random.default_rng(0)
  shapes = ((3, 5), (7,), (), (0, 4), (2, 3, 4))
  tensors = {f"t{i}.{np.dtype(d).name}": jnp.asarray(_random(rng, d, shapes[i % len(shapes)]))
             for i, d in enumerate(DTYPES)}
  path = str(tmp_path / "model.safetensors")
  save_file(tensors, path, metadata={"format": "pt"})
  ours = io.read_safetensors(path)
  reference = load_file(path)
  assert sorted(ours) == sorted(reference)
  for name, stored in ours.items():
    assert isinstance(stored, io.StoredTensor)
    value = np.asarray(stored)
    ref = np.asarray(reference[name])
    widened = ref.dtype == jnp.bfloat16
    assert value.dtype == (np.float32 if widened else ref.dtype) == stored.dtype, name
    assert value.shape == ref.shape == stored.shape, name
    np.testing.assert_array_equal(value, ref.astype(value.dtype), err_msg=name)
  assert np.asarray(ours["t0.float32"], dtype=np.float64).dtype == np.float64


def _write(path, header: dict, data: bytes):
  blob = json.dumps(header).encode()
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob + data)


@pytest.mark.parametrize("header, data, match", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "ends at byte"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "do not hold"),
    ({"a": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}}, b"\0" * 8, "unsupported"),
    ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "KeyError"),
])
def test_malformed_files_raise(tmp_path, header, data, match):
  path = str(tmp_path / "model.safetensors")
  _write(path, header, data)
  with pytest.raises(ConversionError, match=match):
    io.read_safetensors(path)


def test_truncated_files_raise(tmp_path):
  path = tmp_path / "model.safetensors"
  save_file({"a": jnp.ones((64, 64)), "b": jnp.zeros((8,))}, str(path))
  blob = path.read_bytes()
  stored = io.read_safetensors(str(path))                  # the header is checked when opened
  path.write_bytes(blob[:len(blob) // 2])
  with pytest.raises(ConversionError, match="truncated"):
    io.read_safetensors(str(path))
  with pytest.raises(ConversionError, match="truncated"):  # the data when it is read
    np.asarray(stored["a"] if stored["a"].offset > stored["b"].offset else stored["b"])
  path.write_bytes(blob[:4])
  with pytest.raises(ConversionError, match="not a readable safetensors file"):
    io.read_safetensors(str(path))
  with pytest.raises(ConversionError, match="file not found"):
    io.read_safetensors(str(tmp_path / "missing.safetensors"))
