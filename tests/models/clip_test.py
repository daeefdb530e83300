"""CLIP: conversion from a tiny random transformers CLIPModel, parity, PEZ inputs, preprocessing."""
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hpprompt.models import clip
from hpprompt.models import hub
from hpprompt.models.convert.core import ConversionError
from tests.models import hf_utils
from tests.models.hf_utils import torch
from tests.models.hf_utils import transformers

VOCAB, SOT, EOT, PAD = 100, 98, 99, 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_clip")
  # Different MLP widths and activations per tower catch mixed-up sub-configs.
  text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
              num_attention_heads=4, max_position_embeddings=16, hidden_act="quick_gelu",
              bos_token_id=SOT, eos_token_id=EOT, pad_token_id=PAD)
  vision = dict(hidden_size=32, intermediate_size=41, num_hidden_layers=2, num_attention_heads=4,
                image_size=32, patch_size=8, hidden_act="gelu", layer_norm_eps=1e-6)
  cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)
  torch_model = hf_utils.save_tiny(transformers.CLIPModel, cfg, path)
  return path, torch_model, hub.load_model(str(path))


def _text_batch(rng, pad):
  """`[SOT] tokens [EOT] pad...` rows of lengths 12, 7, 9 (padding on the `pad` side)."""
  lengths, t = (12, 7, 9), 12
  ids = np.full((3, t), PAD, np.int32)
  mask = np.zeros((3, t), bool)
  for r, n in enumerate(lengths):
    row = np.concatenate([[SOT], rng.integers(1, SOT, n - 2), [EOT]])
    cols = slice(0, n) if pad == "right" else slice(t - n, t)
    ids[r, cols], mask[r, cols] = row, True
  return ids, mask


def _torch_text(torch_model, ids, mask=None):
  kwargs = {} if mask is None else {"attention_mask": torch.tensor(mask, dtype=torch.long)}
  with torch.no_grad():
    out = torch_model.get_text_features(input_ids=torch.tensor(ids, dtype=torch.long), **kwargs)
  return out.pooler_output.numpy()


def _pixels(rng, n=2):
  return rng.normal(size=(n, 3, 32, 32)).astype(np.float32)


# Jitted entry points: op-by-op dispatch of the tiny model is slower than compiling it.
@nnx.jit
def _text_features(model, ids, mask):
  return model.text_features(ids, attention_mask=mask)


@nnx.jit
def _image_features(model, pixels):
  return model.image_features(pixels)


@pytest.mark.parametrize("pad", ["right", "left"])
def test_text_features_match_pytorch(tiny, pad):
  _, torch_model, model = tiny
  ids, mask = _text_batch(np.random.default_rng(0), pad)
  ours = _text_features(model, jnp.asarray(ids), jnp.asarray(mask))
  assert ours.shape == (3, 24)
  np.testing.assert_allclose(ours, _torch_text(torch_model, ids, mask), atol=1e-4, rtol=0)
  if pad == "left":  # the padding mask matters here: real tokens come after the pads
    unmasked = _text_features(model, jnp.asarray(ids), jnp.ones(ids.shape, bool))
    assert np.abs(np.asarray(unmasked) - np.asarray(ours)).max() > 1e-3


def test_legacy_eos_pooling_matches_pytorch(tiny, tmp_path):
  """eos_token_id == 2 (pre-#24773 configs) pools at argmax(input_ids), not at the first EOS."""
  path, torch_model, model = tiny
  cfg = json.loads((path / "config.json").read_text())
  cfg["text_config"]["eos_token_id"] = 2
  (tmp_path / "config.json").write_text(json.dumps(cfg))
  shutil.copy(path / "model.safetensors", tmp_path / "model.safetensors")
  legacy = hub.load_model(str(tmp_path))
  ids = np.random.default_rng(1).integers(0, VOCAB, (3, 12)).astype(np.int32)
  ids[0, 3] = 2                                       # an id-2 token is no EOS in legacy mode
  np.testing.assert_array_equal(legacy.eot_index(jnp.asarray(ids)), ids.argmax(-1))
  torch_model.text_model.eos_token_id = 2
  try:
    want = _torch_text(torch_model, ids)
  finally:
    torch_model.text_model.eos_token_id = EOT
  ones = jnp.ones(ids.shape, bool)
  np.testing.assert_allclose(_text_features(legacy, jnp.asarray(ids), ones), want, atol=1e-4,
                             rtol=0)
  # The same ids pool elsewhere under the modern rule (first EOT, or 0 when a row has none).
  np.testing.assert_allclose(_text_features(model, jnp.asarray(ids), ones),
                             _torch_text(torch_model, ids), atol=1e-4, rtol=0)


def test_image_features_match_pytorch(tiny):
  _, torch_model, model = tiny
  pixels = _pixels(np.random.default_rng(2))
  with torch.no_grad():
    want = torch_model.get_image_features(pixel_values=torch.tensor(pixels)).pooler_output
  ours = _image_features(model, jnp.asarray(pixels))
  assert ours.shape == (2, 24)
  np.testing.assert_allclose(ours, want.numpy(), atol=1e-4, rtol=0)
  with pytest.raises(ValueError, match="NCHW"):
    model.image_features(jnp.asarray(pixels.transpose(0, 2, 3, 1)))


def test_logits_match_pytorch(tiny):
  _, torch_model, model = tiny
  rng = np.random.default_rng(3)
  ids, mask = _text_batch(rng, "right")
  pixels = _pixels(rng)
  with torch.no_grad():
    want = torch_model(input_ids=torch.tensor(ids, dtype=torch.long),
                       pixel_values=torch.tensor(pixels),
                       attention_mask=torch.tensor(mask, dtype=torch.long))
  out = jax.jit(lambda i, p, m: model(i, p, m))(jnp.asarray(ids), jnp.asarray(pixels),
                                                jnp.asarray(mask))
  assert out.logits_per_image.shape == (2, 3) and out.logits_per_text.shape == (3, 2)
  # Logits are cosines times exp(logit_scale) (~14.3): scale the 1e-4 tolerance with it.
  atol = 1e-4 * float(np.exp(torch_model.logit_scale.item()))
  np.testing.assert_allclose(out.logits_per_image, want.logits_per_image.numpy(), atol=atol)
  np.testing.assert_allclose(out.logits_per_text, want.logits_per_text.numpy(), atol=atol)
  np.testing.assert_allclose(out.text_embeds, want.text_embeds.numpy(), atol=1e-5)
  np.testing.assert_allclose(out.image_embeds, want.image_embeds.numpy(), atol=1e-5)


def test_inputs_embeds_with_eot_index_equal_ids(tiny):
  """PEZ's path: embeddings in, explicit EOT positions, gradients w.r.t. the embeddings."""
  _, _, model = tiny
  ids, mask = _text_batch(np.random.default_rng(4), "right")
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  a = _text_features(model, ids, mask)
  eot = model.eot_index(ids)
  np.testing.assert_array_equal(eot, [11, 6, 8])
  embeds = model.embed(ids)
  np.testing.assert_array_equal(embeds, model.input_embedding()[ids])
  with pytest.raises(ValueError, match="eot_index"):
    model.text_features(inputs_embeds=embeds)
  target = _image_features(model, jnp.asarray(_pixels(np.random.default_rng(5))))[:1]

  def loss(m, embeds):
    f = m.text_features(inputs_embeds=embeds, attention_mask=mask, eot_index=eot)
    cos = jnp.sum(f * target, -1) / (jnp.linalg.norm(f, axis=-1) * jnp.linalg.norm(target, axis=-1))
    return 1 - cos.mean(), f

  grad, b = nnx.jit(lambda m, e: jax.grad(lambda e: loss(m, e), has_aux=True)(e))(model, embeds)
  np.testing.assert_allclose(a, b, atol=1e-6)
  assert grad.shape == (3, 12, 32) and bool(jnp.all(jnp.isfinite(grad)))
  # Causal: nothing after a row's EOT influences its feature.
  assert float(jnp.abs(grad[1, 7:]).max()) == 0.0 and float(jnp.abs(grad[1, :7]).max()) > 0


def test_bfloat16_runs(tiny):
  path, _, model = tiny
  model16 = hub.load_model(str(path), dtype=jnp.bfloat16)
  ids, mask = _text_batch(np.random.default_rng(6), "right")
  pixels = jnp.asarray(_pixels(np.random.default_rng(7)))
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  for ours, ref in [(_text_features(model16, ids, mask), _text_features(model, ids, mask)),
                    (_image_features(model16, pixels), _image_features(model, pixels))]:
    assert ours.dtype == jnp.bfloat16
    ours, ref = np.asarray(ours, np.float32), np.asarray(ref)
    assert np.linalg.norm(ours - ref) < 0.05 * np.linalg.norm(ref)


def test_config_follows_hf_resolution():
  """Old hub configs: generation keys are harmless; `text_config_dict` overrides `text_config`."""
  legacy = {
      "model_type": "clip", "projection_dim": 1024, "initializer_factor": 1.0,
      "logit_scale_init_value": 2.6592, "torch_dtype": "float32", "transformers_version": None,
      "text_config": {"hidden_size": 512, "hidden_act": "quick_gelu", "eos_token_id": 2,
                      "num_beam_groups": 1, "typical_p": 1, "use_bfloat16": False,
                      "tie_word_embeddings": True, "bad_words_ids": None, "id2label": {}},
      "text_config_dict": {"hidden_act": "gelu", "hidden_size": 1024, "intermediate_size": 4096,
                           "num_attention_heads": 16, "num_hidden_layers": 24},
      "vision_config": {"hidden_size": 1280, "patch_size": 14, "hidden_act": "gelu",
                        "intermediate_size": 5120, "num_attention_heads": 16,
                        "num_hidden_layers": 32, "use_bfloat16": False},
      "vision_config_dict": None,
  }
  cfg = clip.CLIPConfig.from_hf_config(legacy)
  # Like CLIPConfig: the override is CLIPTextConfig(**text_config_dict), defaults included.
  assert cfg.text == clip.CLIPTextConfig(dim=1024, mlp_dim=4096, num_heads=16, num_layers=24,
                                         activation="gelu", eos_token_id=49407)
  assert cfg.vision == clip.CLIPVisionConfig(patch_size=14, dim=1280, mlp_dim=5120,
                                             num_heads=16, num_layers=32, activation="gelu")
  assert cfg.projection_dim == 1024
  hf = transformers.CLIPConfig.from_dict(legacy).text_config
  assert (hf.hidden_act, hf.hidden_size, hf.num_hidden_layers, hf.eos_token_id) == (
      "gelu", 1024, 24, 49407)


def test_loader_errors(tiny, tmp_path):
  path, _, _ = tiny
  cfg = json.loads((path / "config.json").read_text())
  shutil.copy(path / "model.safetensors", tmp_path / "model.safetensors")

  def load_with(**changes):
    new = json.loads(json.dumps(cfg))
    for where, (key, value) in changes.items():
      (new if where == "top" else new[where])[key] = value
    (tmp_path / "config.json").write_text(json.dumps(new))
    return hub.load_model(str(tmp_path))

  with pytest.raises(ConversionError, match="text_config: unknown config option rope_theta"):
    load_with(text_config=("rope_theta", 1e4))
  with pytest.raises(ConversionError, match="vision_config: unknown config option"):
    load_with(vision_config=("use_register_tokens", True))
  with pytest.raises(ConversionError, match="clip: unknown config option"):
    load_with(top=("vision_feature_layer", -2))
  with pytest.raises(ConversionError, match="unsupported config option hidden_act"):
    load_with(text_config=("hidden_act", "swish_beta"))
  with pytest.raises(ConversionError, match="eos_token_id"):
    load_with(text_config=("eos_token_id", [EOT, 3]))
  with pytest.raises(ConversionError, match=r"shape mismatch.*mlp\.fc[12]\.weight"):
    load_with(text_config=("intermediate_size", 40))
  with pytest.raises(ConversionError, match="shape mismatch.*patch_embedding"):
    load_with(vision_config=("patch_size", 4))
  with pytest.raises(ConversionError, match="shape mismatch.*text_projection"):
    load_with(top=("projection_dim", 16))


# --- Preprocessing -------------------------------------------------------------------------


def _natural_image(rng, h, w):
  """Smooth gradients plus noise: closer to photos than pure noise, still many edge cases."""
  yy, xx = np.mgrid[0:h, 0:w]
  base = 128 + 90 * np.sin(xx / 13.0)[..., None] * np.cos(yy[..., None] / 29.0 + np.arange(3))
  return np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _torch_uint8_resize(image, h, w):
  """What torchvision's resize runs for a uint8 CPU image with BICUBIC + antialias."""
  x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
  out = torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", antialias=True,
                                        align_corners=False)
  return out[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("shape, resized", [((300, 257), (261, 224)),    # downscale, portrait
                                            ((97, 150), (224, 346)),     # upscale, landscape
                                            ((640, 481), (298, 224))])
def test_resize_matches_torch_uint8_kernel(shape, resized):
  rng = np.random.default_rng(sum(shape))
  for image in (_natural_image(rng, *shape), rng.integers(0, 256, shape + (3,), np.uint8)):
    ours = clip.resize_bicubic(image, *resized)
    np.testing.assert_array_equal(ours, _torch_uint8_resize(image, *resized))
    # Pillow's 22-bit weights round differently on a few pixels only.
    pil = clip.resize_bicubic(image, *resized, backend="pil").astype(int)
    assert np.abs(pil - ours).max() <= 2 and (pil != ours).mean() < 0.01


def test_preprocess_image_matches_reference_pipeline():
  """CLIPImageProcessor's steps (torchvision backend) rebuilt from torch + transformers' constants.

  transformers' own CLIPImageProcessor needs torchvision, which does not work with the CPU torch
  here (see the next test). The resize is checked bit for bit above, so the only freedom left is float
  rounding in the fused rescale + normalise: 1e-5.
  """
  from transformers.image_utils import OPENAI_CLIP_MEAN
  from transformers.image_utils import OPENAI_CLIP_STD
  assert clip.OPENAI_CLIP_MEAN == tuple(OPENAI_CLIP_MEAN)
  assert clip.OPENAI_CLIP_STD == tuple(OPENAI_CLIP_STD)
  rng = np.random.default_rng(8)
  for shape, resized in [((300, 257), (261, 224)), ((97, 150), (224, 346))]:
    image = _natural_image(rng, *shape)
    ours = clip.preprocess_image(image)
    assert ours.shape == (3, 224, 224) and ours.dtype == np.float32
    big = _torch_uint8_resize(image, *resized)
    top, left = (resized[0] - 224) // 2, (resized[1] - 224) // 2
    crop = big[top:top + 224, left:left + 224].astype(np.float32) / 255
    want = ((crop - np.float32(OPENAI_CLIP_MEAN)) / np.float32(OPENAI_CLIP_STD)).transpose(2, 0, 1)
    np.testing.assert_allclose(ours, want, atol=1e-5)
  gray = rng.integers(0, 256, (50, 60), np.uint8)
  np.testing.assert_array_equal(clip.preprocess_image(gray),
                                clip.preprocess_image(np.repeat(gray[..., None], 3, -1)))
  with pytest.raises(ValueError, match="uint8"):
    clip.preprocess_image(image.astype(np.float32))


def test_preprocess_image_matches_clip_image_processor_pil():
  """transformers' own Pillow pipeline (`CLIPImageProcessorPil`) against backend="pil".

  The torchvision pipeline is rebuilt from torch above: the torchvision wheel that installs next to
  the CPU torch here is a CUDA build whose ops fail to register. Allow one uint8 level on under 1% of
  pixels (Pillow's fixed-point rounding is version dependent); that still catches wrong sizes, crops,
  channel order or normalisation.
  """
  image = _natural_image(np.random.default_rng(9), 300, 257)
  std255 = np.float32(clip.OPENAI_CLIP_STD)[:, None, None] * 255
  for image in (image, image[:97, :150]):
    want = transformers.CLIPImageProcessorPil()(images=image, return_tensors="np")["pixel_values"][0]
    ours = clip.preprocess_image(image, backend="pil")
    assert ours.shape == want.shape
    levels = np.abs(ours - want) * std255         # difference in uint8 steps
    assert levels.max() < 1.01 and (levels > 0.01).mean() < 0.01
