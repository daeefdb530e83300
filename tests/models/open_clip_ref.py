"""open-clip-torch's model classes for the parity tests, imported without torchvision.

`import open_clip` runs its package __init__, which imports `open_clip.transform` (torchvision
transforms) and `open_clip.utils` (torchvision.ops.misc.FrozenBatchNorm2d). PyPI's torchvision does
not import beside the CPU torch wheel pinned here, and the tests need neither: the text and vision
towers (`open_clip.model.CLIP`, `open_clip.transformer`) are plain torch. So this module registers
the installed `open_clip` directory as a package without executing its __init__, and a stub
`torchvision.ops.misc` whose FrozenBatchNorm2d only `freeze_batch_norm_2d` (ResNet towers) would
use. Test-only; the library never imports open_clip.
"""
import importlib
import importlib.util
import sys
import types

import pytest

torch = pytest.importorskip("torch")


def _stub_torchvision() -> bool:
  """Installs the stub unless a working torchvision is importable; True if it did."""
  if importlib.util.find_spec("torchvision") is not None:
    try:
      importlib.import_module("torchvision.ops.misc")
      return False
    except Exception:  # noqa: BLE001  (a torchvision that does not load beside this torch)
      for name in [n for n in sys.modules if n.startswith("torchvision")]:
        del sys.modules[name]
  misc = types.ModuleType("torchvision.ops.misc")

  class FrozenBatchNorm2d(torch.nn.Module):   # never instantiated by the ViT towers
    pass

  misc.FrozenBatchNorm2d = FrozenBatchNorm2d
  ops = types.ModuleType("torchvision.ops")
  ops.misc = misc
  root = types.ModuleType("torchvision")
  root.ops = ops
  sys.modules.update({"torchvision": root, "torchvision.ops": ops, "torchvision.ops.misc": misc})
  return True


def open_clip_model():
  """The `open_clip.model` module (CLIP, CLIPTextCfg, CLIPVisionCfg), or skip the test."""
  spec = importlib.util.find_spec("open_clip")
  if spec is None:
    pytest.skip("open-clip-torch is not installed")
  if "open_clip" not in sys.modules:
    package = types.ModuleType("open_clip")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["open_clip"] = package
  importlib.import_module("transformers")   # before the stub: it probes torchvision's spec
  stubbed = _stub_torchvision()
  try:
    return importlib.import_module("open_clip.model")
  finally:   # the stub only serves open_clip.utils' import; nothing else should see it
    if stubbed:
      for name in ("torchvision.ops.misc", "torchvision.ops", "torchvision"):
        sys.modules.pop(name, None)


def open_clip_tokenizer():
  """The `open_clip.tokenizer` module (SimpleTokenizer with the real CLIP BPE vocabulary)."""
  open_clip_model()
  return importlib.import_module("open_clip.tokenizer")
