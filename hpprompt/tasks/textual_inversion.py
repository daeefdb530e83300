"""Textual inversion with CLIP: the reward of a prompt is its CLIP similarity to a target image.

PIN's third task ("Hard Prompts with Interpretability", Choi et al. 2024, Sec. 5.3; methods.md §2.3)
and PEZ's main one ("Hard Prompts Made Easy", Wen et al. 2023; baselines.md §2.2): find a short hard
prompt p whose CLIP text embedding matches the image x,

  R(p) = cos(f_text(p), f_image(x)),

the plain cosine of the projected features (no logit scale, no z-score). Each target image is
preprocessed and encoded once. A batch of prompts is tokenized as `[SOT] p [EOT] 0...` (CLIP's
BPE, `clip_tokenizer`), padded to a bucketed length, sharded over the mesh's 'data' axis and
encoded by one jitted text tower; the papers average over targets, with one prompt searched per
target (one agent / PEZ run per target, see `hpprompt.launch.textual_inversion`).
"""
import functools
import os
import urllib.error
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models import clip_image
from hpprompt.models.clip import CLIP
from hpprompt.models.clip_tokenizer import encode_for_clip
from hpprompt.models.tokenizer import Tokenizer
from hpprompt.tasks.base import StepRewards
from hpprompt.training import sharding

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


class ImageError(ValueError):
  """An image that cannot be read; the message names the file or URL."""


def _decode(data, name: str) -> np.ndarray:
  """uint8 RGB of an image file or stream; over Pillow's size limit (a decompression bomb guard)
  it is refused from its header, before any pixel is decoded."""
  from PIL import Image  # noqa: PLC0415
  from PIL import UnidentifiedImageError  # noqa: PLC0415
  limit = Image.MAX_IMAGE_PIXELS
  try:
    Image.MAX_IMAGE_PIXELS = None    # checked below, naming the file (Pillow's error does not)
    try:
      opened = Image.open(data)
    finally:
      Image.MAX_IMAGE_PIXELS = limit
    with opened as image:
      width, height = image.size
      if limit and width * height > limit:
        raise ImageError(f"{name}: {width} x {height} pixels ({width * height:,}) exceed Pillow's "
                         f"limit of {limit:,} pixels (PIL.Image.MAX_IMAGE_PIXELS); use a smaller "
                         "image.")
      return np.asarray(image.convert("RGB"))
  except UnidentifiedImageError as e:
    raise ImageError(f"{name}: not a readable image (unsupported format or corrupt file).") from e
  except OSError as e:
    raise ImageError(f"{name}: cannot read the image ({e}).") from e


def _fetch(url: str, timeout: float) -> np.ndarray:
  import io  # noqa: PLC0415
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      data = response.read()
  except (urllib.error.URLError, OSError, ValueError) as e:
    reason = getattr(e, "reason", e)
    raise ImageError(f"{url}: could not download ({reason}); pass a local file instead.") from e
  return _decode(io.BytesIO(data), url)


def _directory(path: str) -> list[str]:
  files = sorted(os.path.join(path, f) for f in os.listdir(path)
                 if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
  if not files:
    raise ImageError(f"{path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this directory.")
  return files


def load_images(spec: str, *, timeout: float = 20.0) -> list[tuple[str, np.ndarray]]:
  """(name, uint8 RGB [H, W, 3]) for every target of `spec`.

  `spec` is a comma-separated list of image files, directories (their image files, sorted) and
  http(s) URLs. Errors name the file or URL: missing, empty directory, not an image, no network.
  """
  items = [s.strip() for s in spec.split(",") if s.strip()]
  if not items:
    raise ImageError("no image given.")
  out = []
  for item in items:
    if item.startswith(("http://", "https://")):
      out.append((item, _fetch(item, timeout)))
    elif os.path.isdir(item):
      out.extend((f, _decode(f, f)) for f in _directory(item))
    elif os.path.isfile(item):
      out.append((item, _decode(item, item)))
    else:
      raise ImageError(f"{item}: no such file, directory or http(s) URL.")
  return out


def _normalize(x: jax.Array) -> jax.Array:
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _text_embeds(state, ids, eot, *, graphdef):
  model = nnx.merge(graphdef, state)
  return _normalize(model.text_features(ids, eot_index=eot).astype(jnp.float32))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _image_embeds(state, pixels, *, graphdef):
  model = nnx.merge(graphdef, state)
  return _normalize(model.image_features(pixels).astype(jnp.float32))


class CLIPScorer:
  """Normalised CLIP embeddings of prompts and images: batched, jitted, sharded over the mesh."""

  def __init__(self, model: CLIP, tokenizer: Tokenizer, *, mesh=None,
               preprocess: dict | None = None, chunk_size: int = 256):
    self.model, self.tokenizer = model, tokenizer
    self.mesh = mesh or sharding.make_mesh()
    self.preprocess = dict(preprocess or {})
    self.chunk_size = chunk_size
    self.graphdef, state = nnx.split(model)
    self.state = sharding.replicate(state, self.mesh)
    self.context_length = model.config.text.max_positions

  def _rows(self, n: int) -> int:
    return -(-n // self.mesh.devices.size) * self.mesh.devices.size

  def pixels(self, image: np.ndarray) -> np.ndarray:
    """[3, S, S] pixel values of one uint8 image, at the vision tower's resolution."""
    size = self.model.config.vision.image_size
    kwargs = {"size": size, "crop_size": size, **self.preprocess}
    return clip_image.preprocess_image(image, **kwargs)

  def image_embeds(self, images: list[np.ndarray]) -> np.ndarray:
    """[N, P] L2-normalised image embeddings of uint8 images."""
    pixels = np.stack([self.pixels(im) for im in images])
    n = len(pixels)
    pixels = sharding.pad_rows(pixels, self.mesh.devices.size)
    out = _image_embeds(self.state, sharding.shard(pixels, self.mesh), graphdef=self.graphdef)
    return sharding.to_host(out)[:n]

  def text_embeds(self, prompts: list[str]) -> np.ndarray:
    """[B, P] L2-normalised text embeddings (chunks of `chunk_size` prompts)."""
    out = []
    for start in range(0, len(prompts), self.chunk_size):
      part = prompts[start:start + self.chunk_size]
      ids, eot = encode_for_clip(self.tokenizer, part, self.context_length)
      rows = self._rows(len(part))
      ids, eot = sharding.pad_rows(ids, rows), sharding.pad_rows(eot, rows)
      emb = _text_embeds(self.state, *sharding.shard((ids, eot), self.mesh),
                         graphdef=self.graphdef)
      out.append(sharding.to_host(emb)[:len(part)])
    return np.concatenate(out)

  def scores(self, prompts: list[str], targets: np.ndarray) -> np.ndarray:
    """[B, N] cosine of each prompt with each target embedding [N, P]."""
    return self.text_embeds(prompts) @ np.asarray(targets, np.float32).T


class TextualInversionTask:
  """One target image as a `PromptTask`: the reward and the validation score are its cosine.

  The rewards are returned as `shaped` (the task's own normalisation: none), so the agent skips
  its z-score and only rescales them (PIN: [0, 1] -> [0, 1]; RLPrompt: [0, 1] -> [0, 80]).
  """
  validation_metric = "clip_score"

  def __init__(self, scorer: CLIPScorer, target: np.ndarray, name: str = "target"):
    self.scorer, self.name = scorer, name
    self.target = np.asarray(target, np.float32).reshape(1, -1)

  def step_rewards(self, prompts: list[str], step: int) -> StepRewards:
    del step   # the same target every step
    score = self.scorer.scores(prompts, self.target)[:, 0]
    return StepRewards(raw=score, metrics={"clip_score_max": float(score.max())}, shaped=score)

  def validate(self, prompts: list[str]) -> np.ndarray:
    return self.scorer.scores(prompts, self.target)[:, 0]

  def evaluate(self, prompt: str) -> dict:
    del prompt   # no held-out data: the validation score is the result
    return {}

  def memo_state(self) -> dict:
    return {}

  def load_memo_state(self, state: dict | None) -> None:
    del state
