"""A synthetic captioned image set with known answers: coloured shapes on plain backgrounds.

Textual inversion (issue #21) needs a CLIP whose right answers are known: no pretrained CLIP can be
installed here, so this module renders the images that `hpprompt.models.train_clip` trains one on.
An image is one shape of one colour at one position on one background (`Attributes`), drawn with
Pillow at 4x the output size and downsampled (antialiased), with per-image jitter of size, offset,
rotation and colour, so two renders of the same attributes differ. Its captions come from
`TEMPLATES`, e.g. "a red circle on the left, white background".

Background colours and object colours are disjoint word sets, so `named_attributes` can read off
which colour, shape, background and position a prompt names, and `recovered` whether it names the
image's (the attribute-recovery metric of `hpprompt.launch.ti_recovery`).

Everything is deterministic from (seed, split): `make_split(n, seed=s, split="train")` and
`split="heldout"` draw their images from different random streams, so held-out images share
attribute combinations with the training set but are new renders.
"""
import dataclasses
import itertools
import re

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (40, 70, 225),
           "yellow": (240, 215, 30), "purple": (135, 45, 175), "orange": (245, 135, 20)}
SHAPES = ("circle", "square", "triangle", "star", "cross")
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "gray": (128, 128, 128)}
POSITIONS = ("left", "right", "top", "bottom")
ATTRIBUTES = ("colour", "shape", "background", "position")
VALUES = {"colour": tuple(COLOURS), "shape": SHAPES, "background": tuple(BACKGROUNDS),
          "position": POSITIONS}

# The first template is the canonical caption (retrieval candidates); the others are training
# variety, some naming only part of the attributes.
TEMPLATES = (
    "a {colour} {shape} on the {position}, {background} background",
    "a {colour} {shape} on a {background} background",
    "a {colour} {shape} on the {position}",
    "{background} background with a {colour} {shape} on the {position}",
    "a {colour} {shape}",
    "a picture of a {colour} {shape} at the {position} on {background}",
)
_CENTRES = {"left": (0.3, 0.5), "right": (0.7, 0.5), "top": (0.5, 0.3), "bottom": (0.5, 0.7)}
_SPLITS = {"train": 0, "heldout": 1}
SUPERSAMPLE = 4


@dataclasses.dataclass(frozen=True)
class Attributes:
  colour: str
  shape: str
  background: str
  position: str

  def caption(self, template: int = 0) -> str:
    return TEMPLATES[template].format(**dataclasses.asdict(self))

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def all_attributes() -> list[Attributes]:
  """Every combination, in a fixed order (colour-major)."""
  return [Attributes(*combo) for combo in itertools.product(*(VALUES[a] for a in ATTRIBUTES))]


def chance(attribute: str) -> float:
  """Chance of naming the right value of `attribute` with one uniformly random guess."""
  return 1.0 / len(VALUES[attribute])


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple]:
  if shape == "square":
    pts = [(np.pi / 4 + k * np.pi / 2, r) for k in range(4)]
  elif shape == "triangle":
    pts = [(-np.pi / 2 + k * 2 * np.pi / 3, r * 1.15) for k in range(3)]
  elif shape == "star":
    pts = [(-np.pi / 2 + k * np.pi / 5, r * 1.15 if k % 2 == 0 else r * 0.48) for k in range(10)]
  elif shape == "cross":
    a, b = r, r * 0.36
    corners = [(b, a), (b, b), (a, b), (a, -b), (b, -b), (b, -a), (-b, -a), (-b, -b), (-a, -b),
               (-a, b), (-b, b), (-b, a)]
    pts = [(np.arctan2(y, x), np.hypot(x, y)) for x, y in corners]
  else:
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}.")
  return [(cx + rad * np.cos(t + angle), cy + rad * np.sin(t + angle)) for t, rad in pts]


def render(attrs: Attributes, size: int, rng: np.random.Generator) -> np.ndarray:
  """uint8 RGB [size, size, 3] of `attrs`, with jitter drawn from `rng`."""
  from PIL import Image  # noqa: PLC0415
  from PIL import ImageDraw  # noqa: PLC0415
  big = size * SUPERSAMPLE
  jitter = lambda rgb, amount: tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255))
                                     for c in rgb)
  image = Image.new("RGB", (big, big), jitter(BACKGROUNDS[attrs.background], 8))
  draw = ImageDraw.Draw(image)
  fx, fy = _CENTRES[attrs.position]
  cx = (fx + rng.uniform(-0.06, 0.06)) * big
  cy = (fy + rng.uniform(-0.06, 0.06)) * big
  r = rng.uniform(0.15, 0.2) * big
  fill = jitter(COLOURS[attrs.colour], 15)
  if attrs.shape == "circle":
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
  else:
    draw.polygon(_polygon(attrs.shape, cx, cy, r, rng.uniform(-0.25, 0.25)), fill=fill)
  return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))


@dataclasses.dataclass(frozen=True)
class ShapeSet:
  images: np.ndarray               # uint8 [N, S, S, 3]
  attributes: tuple                # N x Attributes

  def __len__(self) -> int:
    return len(self.attributes)

  def captions(self, template: int = 0) -> list[str]:
    return [a.caption(template) for a in self.attributes]


def make_split(n: int, *, seed: int = 0, split: str = "train", size: int = 32) -> ShapeSet:
  """`n` renders; attribute combinations cycle through a seeded permutation of all of them (each
  appears n / #combinations times, up to one), every image with its own jitter."""
  if split not in _SPLITS:
    raise ValueError(f"split must be one of {tuple(_SPLITS)}, got {split!r}.")
  rng = np.random.default_rng([seed, _SPLITS[split]])
  combos = all_attributes()
  order = np.concatenate([rng.permutation(len(combos)) for _ in range(-(-n // len(combos)))])[:n]
  attrs = tuple(combos[i] for i in order)
  images = np.stack([render(a, size, rng) for a in attrs]) if n else np.zeros((0, size, size, 3),
                                                                              np.uint8)
  return ShapeSet(images, attrs)


def named_attributes(text: str) -> dict[str, set]:
  """{attribute: the values of it that `text` names as whole words}, case-insensitive."""
  words = set(re.findall(r"[a-z]+", text.lower()))
  return {a: words & set(VALUES[a]) for a in ATTRIBUTES}


def recovered(text: str, attrs: Attributes) -> dict[str, bool]:
  """Per attribute: `text` names the image's value and no other value of that attribute; 'both'
  is colour and shape together. A prompt naming nothing, or every colour, recovers nothing."""
  named = named_attributes(text)
  out = {a: named[a] == {getattr(attrs, a)} for a in ATTRIBUTES}
  out["both"] = out["colour"] and out["shape"]
  return out


__all__ = ("ATTRIBUTES", "Attributes", "BACKGROUNDS", "COLOURS", "POSITIONS", "SHAPES", "ShapeSet",
           "TEMPLATES", "VALUES", "all_attributes", "chance", "make_split", "named_attributes",
           "recovered", "render")
