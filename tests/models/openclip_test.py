"""OpenCLIP checkpoints: conversion and parity with open-clip-torch on tiny random configs, the CLIP
tokenizer against open_clip's SimpleTokenizer, and OpenCLIP's image preprocessing."""
import json

import numpy as np
import pytest
from PIL import Image

from hpprompt.models import clip_image
from hpprompt.models import clip_tokenizer
from hpprompt.models import openclip
from hpprompt.models.convert.core import ConversionError
from tests.models import open_clip_ref

torch = open_clip_ref.torch
VOCAB = 64
SOT, EOT = 62, 63


def _model_cfg(quick_gelu: bool, pool_type: str = "argmax") -> dict:
  # Different widths per tower and a non-default mlp_ratio catch mixed-up sub-configs.
  return {"embed_dim": 24, "quick_gelu": quick_gelu,
          "vision_cfg": {"image_size": 32, "layers": 2, "width": 40, "head_width": 10,
                         "patch_size": 8, "mlp_ratio": 2.5},
          "text_cfg": {"context_length": 16, "vocab_size": VOCAB, "width": 32, "heads": 4,
                       "layers": 2, "pool_type": pool_type, "eos_id": EOT}}


def _save(tmp_path, model_cfg, preprocess_cfg=None, seed=0):
  """A random open_clip CLIP (every parameter perturbed) saved in the hub directory layout."""
  from safetensors.torch import save_file
  torch.manual_seed(seed)
  model = open_clip_ref.open_clip_model().CLIP(**model_cfg).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.2 * torch.randn_like(p))
  save_file({k: v.contiguous() for k, v in model.state_dict().items()},
            str(tmp_path / "open_clip_model.safetensors"))
  with open(tmp_path / "open_clip_config.json", "w") as f:
    json.dump({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}, f)
  return model


def _ids(rng, n=5, t=16):
  ids = np.zeros((n, t), np.int64)
  for i in range(n):
    length = int(rng.integers(1, t - 1))
    ids[i, 0] = SOT
    ids[i, 1:length] = rng.integers(1, SOT, length - 1)
    ids[i, length] = EOT
  return ids


@pytest.mark.parametrize("quick_gelu, pool_type", [(False, "argmax"), (True, "argmax"),
                                                   (False, "eos")])
def test_towers_match_open_clip(tmp_path, quick_gelu, pool_type):
  cfg = _model_cfg(quick_gelu, pool_type)
  ref = _save(tmp_path, cfg, seed=int(quick_gelu))
  ours, _ = openclip.load(str(tmp_path))
  assert ours.config.text.activation == ("quick_gelu" if quick_gelu else "gelu")
  rng = np.random.default_rng(0)
  ids = _ids(rng)
  pixels = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)
  with torch.no_grad():
    want_text = ref.encode_text(torch.from_numpy(ids)).numpy()
    want_image = ref.encode_image(torch.from_numpy(pixels)).numpy()
    want_logits = ref.get_logits(torch.from_numpy(pixels), torch.from_numpy(ids))[0].numpy()
  np.testing.assert_allclose(np.asarray(ours.text_features(ids.astype(np.int32))), want_text,
                             atol=1e-4, rtol=1e-4)
  # Shorter inputs (cut after the longest EOT) pool the same features: causal attention.
  short = ids[:, :int(np.max(np.argmax(ids == EOT, 1))) + 1].astype(np.int32)
  np.testing.assert_allclose(np.asarray(ours.text_features(short)), want_text, atol=1e-4,
                             rtol=1e-4)
  np.testing.assert_allclose(np.asarray(ours.image_features(pixels)), want_image, atol=1e-4,
                             rtol=1e-4)
  np.testing.assert_allclose(np.asarray(ours(ids.astype(np.int32), pixels).logits_per_image),
                             want_logits, atol=1e-3, rtol=1e-4)


def test_strict_conversion(tmp_path):
  cfg = _model_cfg(False)
  ref = _save(tmp_path, cfg)
  tensors = {k: v.numpy() for k, v in ref.state_dict().items()}
  with pytest.raises(ConversionError, match="unexpected checkpoint key"):
    openclip.convert(cfg, {**tensors, "visual.extra": np.zeros(1)})
  with pytest.raises(ConversionError, match="missing key 'visual.proj'"):
    openclip.convert(cfg, {k: v for k, v in tensors.items() if k != "visual.proj"})
  bad = [({**cfg, "vision_cfg": {**cfg["vision_cfg"], "ls_init_value": 0.1}}, "ls_init_value"),
         ({**cfg, "text_cfg": {**cfg["text_cfg"], "hf_model_name": "x"}}, "hf_model_name"),
         ({**cfg, "init_logit_bias": -10.0}, "init_logit_bias"),
         ({**cfg, "vision_cfg": {**cfg["vision_cfg"], "attentional_pool": True}},
          "attentional_pool"),
         ({**cfg, "new_option": 1}, "unknown config option new_option")]
  for model_cfg, message in bad:
    with pytest.raises(ConversionError, match=message):
      openclip.config_from_open_clip(model_cfg)
  with pytest.raises(ConversionError, match="interpolation"):
    openclip.preprocess_config({"interpolation": "bilinear"})


def _reference_transform(image: np.ndarray, size: int, mean, std) -> np.ndarray:
  """open_clip.transform.image_transform(size, is_train=False): Resize(size, BICUBIC) on the PIL
  image (shortest side to size, long side int(size * long / short)), torchvision CenterCrop
  (top = int(round((h - size) / 2))), ToTensor, Normalize. Rebuilt with Pillow, since
  open_clip.transform imports torchvision (see open_clip_ref)."""
  pil = Image.fromarray(image)
  w, h = pil.size
  short, long = min(w, h), max(w, h)
  new = (size, int(size * long / short)) if w <= h else (int(size * long / short), size)
  pil = pil.resize(new, Image.BICUBIC)
  w, h = pil.size
  top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
  x = np.asarray(pil.crop((left, top, left + size, top + size)), np.float32) / 255
  return ((x - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1)


def test_preprocessing_matches_open_clip_transform():
  rng = np.random.default_rng(3)
  mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
  kwargs = openclip.preprocess_config({"mean": mean, "std": std, "size": 32})
  std255 = np.float32(std)[:, None, None] * 255
  for shape in ((51, 40), (40, 75), (33, 33)):    # odd margins: the crop rounding matters
    image = rng.integers(0, 256, shape + (3,), np.uint8)
    ours = clip_image.preprocess_image(image, **kwargs)
    want = _reference_transform(image, 32, mean, std)
    assert ours.shape == want.shape == (3, 32, 32)
    levels = np.abs(ours - want) * std255        # Pillow's fixed-point rounding: one level, rarely
    assert levels.max() < 1.01 and (levels > 0.01).mean() < 0.02


def test_clip_tokenizer_matches_open_clip():
  ref = open_clip_ref.open_clip_tokenizer().SimpleTokenizer()
  ours = clip_tokenizer.clip_tokenizer()
  assert ours.vocab_size == 49408 == len(ref.encoder)
  assert ours.token_to_id("<|startoftext|>") == 49406 and ours.token_to_id("<|endoftext|>") == 49407
  texts = ["a photo of a Cat!", "it's   don't we'll  THE 1234 dogs", "café naïve — emoji 🙂 ñ",
           "  trailing  ", "a,b.c;;d e-mail", "straße 東京", "x" * 60,
           "an astronaut riding a horse, trending on artstation, 4k"]
  for text in texts:
    ids = ours.encode(text)
    assert ids == ref.encode(text), text
    assert ours.decode(ids) == ref.decode(ids).strip()


def test_encode_for_clip_layout():
  tok = clip_tokenizer.clip_tokenizer()
  ids, eot = clip_tokenizer.encode_for_clip(tok, ["a cat", "a photo of " * 40], 77)
  assert ids.shape == (2, 77) and list(eot) == [3, 76]
  assert list(ids[0, :5]) == [49406, 320, 2368, 49407, 0] and ids[1, 76] == 49407
  ids, _ = clip_tokenizer.encode_for_clip(tok, ["a cat"], 77, bucket=8)
  assert ids.shape == (1, 8)


def test_load_clip_dispatches_on_the_directory(tmp_path):
  """`clip_loader.load_clip`: an OpenCLIP directory (bundled tokenizer, OpenCLIP preprocessing),
  and 'tiny' (random, real vocabulary)."""
  from hpprompt.models import clip_loader
  cfg = _model_cfg(False)
  _save(tmp_path, cfg, {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})
  model, tokenizer, preprocess = clip_loader.load_clip(str(tmp_path))
  assert model.config.projection_dim == 24 and model.config.text.eos_token_id == 2
  assert tokenizer.vocab_size == 49408 and tokenizer.decode(tokenizer.encode("a Cat")) == "a cat"
  assert preprocess == {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "backend": "pil",
                        "crop_round": True}
  tiny, tiny_tok, tiny_pre = clip_loader.load_clip("tiny")
  assert tiny.config.text.vocab_size == tiny_tok.vocab_size == 49408 and tiny_pre == {}
