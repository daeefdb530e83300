"""CLIP image preprocessing in NumPy: `CLIPImageProcessor`'s resize, crop and normalisation.

The antialiased bicubic resize reproduces torchvision's uint8 kernel bit for bit (transformers'
default) or Pillow's (the original CLIP pipeline); see `resize_bicubic`.
"""
import numpy as np

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _bicubic_coeffs(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Antialiased bicubic taps (Keys a=-0.5, support scaled when downsampling), as in Pillow.

  Returns (first input index [out], weights [out, K]) with weights normalised to sum to 1.
  """
  scale = in_size / out_size
  filter_scale = max(scale, 1.0)
  support = 2.0 * filter_scale
  centers = (np.arange(out_size) + 0.5) * scale
  lo = np.maximum((centers - support + 0.5).astype(np.int64), 0)      # C int() truncation
  hi = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
  k = int((hi - lo).max())
  idx = lo[:, None] + np.arange(k)[None]
  x = np.abs((idx - centers[:, None] + 0.5) / filter_scale)
  a = -0.5
  w = np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
               np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))
  w = np.where(idx < hi[:, None], w, 0.0)
  return lo, w / w.sum(axis=1, keepdims=True)


def _resample_axis(image: np.ndarray, axis: int, out_size: int, backend: str) -> np.ndarray:
  """One separable pass on uint8 data with fixed-point weights and uint8 clipping."""
  lo, w = _bicubic_coeffs(image.shape[axis], out_size)
  if backend == "pil":
    bits = 22                            # Pillow: PRECISION_BITS = 32 - 8 - 2
  else:                                  # torch's uint8 kernel: int16 weights, max precision
    bits = 0
    while bits < 22 and int(0.5 + w.max() * (1 << (bits + 1))) < (1 << 15):
      bits += 1
  scaled = w * (1 << bits)
  w_int = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
  x = np.moveaxis(image, axis, 0).astype(np.float64)
  acc = np.full((out_size,) + x.shape[1:], float(1 << (bits - 1)))
  last = image.shape[axis] - 1
  for j in range(w.shape[1]):   # integer-valued float64 sums are exact (< 2^53)
    tap = w_int[:, j].reshape((-1,) + (1,) * (x.ndim - 1))
    acc += x[np.minimum(lo + j, last)] * tap
  out = np.clip(np.floor(acc / (1 << bits)), 0, 255).astype(np.uint8)
  return np.moveaxis(out, 0, axis)


def resize_bicubic(image: np.ndarray, height: int, width: int, *,
                   backend: str = "torchvision") -> np.ndarray:
  """Antialiased bicubic resize of a uint8 [H, W, C] image, horizontal pass first.

  backend="torchvision" reproduces `torchvision` / `torch.nn.functional.interpolate` on uint8 CPU
  tensors bit for bit (what transformers' default `CLIPImageProcessor` runs); backend="pil"
  follows Pillow's `Image.resize(..., BICUBIC)` (22-bit weights, as `CLIPImageProcessorPil` and
  the original CLIP preprocessing). The two differ by at most a few uint8 levels on rare pixels.
  """
  if backend not in ("torchvision", "pil"):
    raise ValueError(f"backend must be 'torchvision' or 'pil', got {backend!r}.")
  if width != image.shape[1]:
    image = _resample_axis(image, 1, width, backend)
  if height != image.shape[0]:
    image = _resample_axis(image, 0, height, backend)
  return image


def preprocess_image(image: np.ndarray, *, size: int = 224, crop_size: int = 224,
                     mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD,
                     backend: str = "torchvision", crop_round: bool = False) -> np.ndarray:
  """uint8 image [H, W, 3] (or grayscale [H, W]) -> float32 pixel_values [3, crop, crop].

  `CLIPImageProcessor` defaults: resize the shortest side to `size` (bicubic, antialiased; the
  long side to int(size * long / short)), center crop, rescale by 1/255, normalise with the
  OpenAI CLIP mean / std. Stack results for a batch [B, 3, crop, crop].
  `crop_round=True` places the crop as torchvision's `center_crop` does (round((h - crop) / 2),
  OpenCLIP's transform) instead of (h - crop) // 2 (`CLIPImageProcessor`).
  """
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"preprocess_image expects a uint8 image, got {image.dtype}.")
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"preprocess_image expects [H, W, 3] (RGB) or [H, W], got {image.shape}.")
  if crop_size > size:
    raise ValueError(f"crop_size={crop_size} is larger than size={size}.")
  h, w = image.shape[:2]
  short, long = min(h, w), max(h, w)
  new_long = int(size * long / short)
  new_h, new_w = (new_long, size) if w <= h else (size, new_long)
  image = resize_bicubic(image, new_h, new_w, backend=backend)
  if crop_round:   # Python's round (half to even), as torchvision
    top, left = int(round((new_h - crop_size) / 2.0)), int(round((new_w - crop_size) / 2.0))
  else:
    top, left = (new_h - crop_size) // 2, (new_w - crop_size) // 2
  image = image[top:top + crop_size, left:left + crop_size]
  mean = np.asarray(mean, np.float32) * 255
  std = np.asarray(std, np.float32) * 255
  return ((image.astype(np.float32) - mean) / std).transpose(2, 0, 1)
