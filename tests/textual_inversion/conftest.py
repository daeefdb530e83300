"""A tiny CLIP trained on a synthetic image-caption set, so that prompt searches have a signal.

Images are 32 x 32: a colour background (red, green, blue, yellow) with a pattern (stripes, dots,
cross, frame) and noise; the caption names both ("red stripes"). transformers' CLIPModel (vocabulary
of the real CLIP BPE, 49,408 ids; everything else tiny) is trained with the CLIP loss for a few
hundred steps on CPU (~10-20 s) and saved as a Hugging Face directory (without tokenizer.json, so
the bundled CLIP tokenizer is used), with the 16 images as PNG files.
"""
import os

import numpy as np
import pytest

from hpprompt.models import clip_image
from hpprompt.models import clip_tokenizer

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 30)}
PATTERNS = ("stripes", "dots", "cross", "frame")
SIZE = 32
STEPS = 250


def draw(colour: str, pattern: str, rng) -> np.ndarray:
  image = np.empty((SIZE, SIZE, 3), np.float32)
  image[:] = COLOURS[colour]
  mark = np.zeros((SIZE, SIZE), bool)
  if pattern == "stripes":
    mark[::4] = mark[1::4] = True
  elif pattern == "dots":
    mark[2::8, 2::8] = mark[3::8, 3::8] = mark[2::8, 3::8] = mark[3::8, 2::8] = True
  elif pattern == "cross":
    mark[14:18] = True
    mark[:, 14:18] = True
  else:
    mark[:3] = mark[-3:] = mark[:, :3] = mark[:, -3:] = True
  image[mark] = 255 - image[mark] * 0.3
  image += rng.normal(0, 12, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)


PAIRS = [(c, p) for c in COLOURS for p in PATTERNS]


@pytest.fixture(scope="session")
def trained_clip(tmp_path_factory):
  """(model directory, image directory, {image file: caption})."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  root = tmp_path_factory.mktemp("trained_clip")
  tok = clip_tokenizer.clip_tokenizer()
  torch.manual_seed(0)
  cfg = transformers.CLIPConfig(
      text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                       hidden_act="gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=0),
      vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, image_size=SIZE, patch_size=8, hidden_act="gelu"),
      projection_dim=32)
  model = transformers.CLIPModel(cfg)
  captions = [f"{c} {p}" for c, p in PAIRS]
  ids, _ = clip_tokenizer.encode_for_clip(tok, captions, 16)
  ids = torch.from_numpy(ids.astype(np.int64))
  mask = (ids != 0).long()
  rng = np.random.default_rng(0)
  opt = torch.optim.Adam(model.parameters(), lr=2e-3)
  labels = torch.arange(len(PAIRS))
  threads = torch.get_num_threads()
  torch.set_num_threads(1)     # tiny matrices: threads only contend on a shared CPU
  for _ in range(STEPS):
    pixels = np.stack([clip_image.preprocess_image(draw(c, p, rng), size=SIZE, crop_size=SIZE)
                       for c, p in PAIRS])
    out = model(input_ids=ids, attention_mask=mask, pixel_values=torch.from_numpy(pixels))
    loss = (torch.nn.functional.cross_entropy(out.logits_per_image, labels)
            + torch.nn.functional.cross_entropy(out.logits_per_text, labels)) / 2
    opt.zero_grad()
    loss.backward()
    opt.step()
  torch.set_num_threads(threads)
  loss = float(loss.detach())
  assert loss < 0.5, f"the tiny CLIP did not learn the synthetic set (loss {loss})"
  model_dir = root / "clip"
  model.save_pretrained(model_dir)
  image_dir = root / "images"
  os.makedirs(image_dir)
  from PIL import Image
  files = {}
  for c, p in PAIRS[::5]:    # four targets, every colour and every pattern once
    path = image_dir / f"{c}_{p}.png"
    Image.fromarray(draw(c, p, np.random.default_rng(99))).save(path)
    files[str(path)] = f"{c} {p}"
  return str(model_dir), str(image_dir), files, model
