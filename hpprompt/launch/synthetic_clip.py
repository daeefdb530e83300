"""Trains the ground-truth CLIP of issue #21 on synthetic shapes and saves it as an OpenCLIP dir.

`run(SyntheticCLIPConfig(...))` is what `experiments/train_synthetic_clip.py` calls: it renders
`tasks.synthetic_shapes` train / held-out splits, encodes every training image's captions (all
`TEMPLATES`) with the bundled CLIP tokenizer, trains `models.train_clip.tiny_config` with the
contrastive loss and writes to `out`:

- `clip/` the model in the OpenCLIP layout (`--clip=<out>/clip` in the textual-inversion launchers)
  plus `clip/synthetic.json` (the data settings, so the held-out images can be re-rendered);
- `training.json` settings, the history (loss, held-out retrieval every `eval_every` steps) and the
  final held-out image->caption retrieval against chance;
- `curves.png` loss and retrieval accuracy against steps.

Retrieval: each held-out image against the canonical captions of all attribute combinations
(`TEMPLATES[0]`); top-1 is right when the most similar caption is the image's own (chance 1 / #
combinations); per attribute, whether that caption's colour / shape / ... is the image's.
"""
import dataclasses
import json
import os
import time

import numpy as np

from hpprompt.launch import cli
from hpprompt.models import clip_tokenizer
from hpprompt.models import train_clip
from hpprompt.tasks import synthetic_shapes as shapes

DATA_FILE = "synthetic.json"


@dataclasses.dataclass(frozen=True)
class SyntheticCLIPConfig:
  out: str = "runs/synthetic_clip"
  seed: int = 0                 # data and model
  train_images: int = 2000
  heldout_images: int = 360
  image_size: int = 32
  patch_size: int = 8
  width: int = 64
  layers: int = 2
  heads: int = 4
  context_length: int = 32
  steps: int = 600
  batch_size: int = 128
  learning_rate: float = 3e-3
  eval_every: int = 100


def data_settings(cfg: SyntheticCLIPConfig) -> dict:
  return {"seed": cfg.seed, "train_images": cfg.train_images,
          "heldout_images": cfg.heldout_images, "image_size": cfg.image_size}


def heldout(settings: dict, n: int | None = None) -> shapes.ShapeSet:
  """The held-out split described by a model's `synthetic.json` (the first `n` images)."""
  count = settings["heldout_images"] if n is None else n
  return shapes.make_split(count, seed=settings["seed"], split="heldout",
                           size=settings["image_size"])


def read_settings(clip_dir: str) -> dict:
  with open(os.path.join(clip_dir, DATA_FILE)) as f:
    return json.load(f)


def encode(tokenizer, texts: list[str], context_length: int) -> tuple[np.ndarray, np.ndarray]:
  return clip_tokenizer.encode_for_clip(tokenizer, texts, context_length)


def retrieval(model, pixel_values: np.ndarray, attrs, candidates, cand_ids, cand_eot) -> dict:
  """Held-out image->caption top-1 accuracy, per-attribute accuracy of the top caption, chance."""
  index = {a: i for i, a in enumerate(candidates)}
  labels = np.asarray([index[a] for a in attrs])
  top1, pred = train_clip.retrieval_top1(model, pixel_values, cand_ids, cand_eot, labels)
  out = {"retrieval_top1": top1, "retrieval_chance": 1.0 / len(candidates)}
  for name in shapes.ATTRIBUTES:
    out[f"retrieval_{name}"] = float(np.mean([getattr(candidates[p], name) == getattr(a, name)
                                              for p, a in zip(pred, attrs)]))
  return out


def plot_curves(path: str, history: list[dict], chance: float) -> None:
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  steps = [h["step"] for h in history]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
  ax1.plot(steps, [h["loss"] for h in history])
  ax1.set(xlabel="step", ylabel="contrastive loss (train)", title="training loss")
  for key, label in (("retrieval_top1", "caption (all attributes)"),
                     ("retrieval_colour", "colour"), ("retrieval_shape", "shape")):
    ax2.plot(steps, [h[key] for h in history], label=label)
  ax2.axhline(chance, color="gray", ls=":", label=f"chance {chance:.4f}")
  ax2.set(xlabel="step", ylabel="held-out top-1", ylim=(0, 1.02), title="image->caption")
  ax2.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def run(cfg: SyntheticCLIPConfig, log=print) -> dict:
  cli.check_positive(cfg, ("train_images", "heldout_images", "image_size", "patch_size",
                           "width", "layers", "heads", "steps", "batch_size", "eval_every"))
  t0 = time.time()
  train_set = shapes.make_split(cfg.train_images, seed=cfg.seed, split="train",
                                size=cfg.image_size)
  held = shapes.make_split(cfg.heldout_images, seed=cfg.seed, split="heldout",
                           size=cfg.image_size)
  tokenizer = clip_tokenizer.clip_tokenizer()
  k = len(shapes.TEMPLATES)
  texts = [a.caption(j) for a in train_set.attributes for j in range(k)]
  ids, eot = encode(tokenizer, texts, cfg.context_length)
  ids, eot = ids.reshape(len(train_set), k, -1), eot.reshape(len(train_set), k)
  candidates = shapes.all_attributes()
  cand_ids, cand_eot = encode(tokenizer, [a.caption(0) for a in candidates], cfg.context_length)
  seen, ids = train_clip.compact_vocabulary(ids, tokenizer.vocab_size)
  cand_compact = np.searchsorted(seen, cand_ids)
  if not np.array_equal(seen[cand_compact], cand_ids):
    raise ValueError("a canonical caption has a token no training caption has.")
  model_cfg = train_clip.tiny_config(
      vocab_size=len(seen), context_length=cfg.context_length,
      image_size=cfg.image_size, patch_size=cfg.patch_size, width=cfg.width, layers=cfg.layers,
      heads=cfg.heads, embed_dim=cfg.width)
  preprocess_cfg = {"size": cfg.image_size}
  train_px = train_clip.pixels(train_set.images, preprocess_cfg, cfg.image_size)
  held_px = train_clip.pixels(held.images, preprocess_cfg, cfg.image_size)
  model = train_clip.init_model(model_cfg, cfg.seed)
  log(f"synthetic CLIP: {len(train_set)} train / {len(held)} held-out images, "
      f"{len(seen)} caption tokens, {cfg.steps} steps -> {cfg.out} "
      f"(data {time.time() - t0:.0f}s)")
  evaluate = lambda m: retrieval(m, held_px, held.attributes, candidates, cand_compact, cand_eot)
  show = lambda r: log(f"step {r['step']}: loss {r['loss']:.3f}, held-out top-1 "
                       f"{r['retrieval_top1']:.3f} (colour {r['retrieval_colour']:.2f}, shape "
                       f"{r['retrieval_shape']:.2f}), {r['seconds']:.0f}s")
  train_cfg = train_clip.TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size,
                                     learning_rate=cfg.learning_rate, eval_every=cfg.eval_every,
                                     seed=cfg.seed)
  model, history = train_clip.train(train_cfg, model, train_px, ids, eot, evaluate=evaluate,
                                    log=show)
  model = train_clip.expand_vocabulary(model, seen, tokenizer.vocab_size)
  model_cfg = model.config
  clip_dir = train_clip.save_open_clip(model, os.path.join(cfg.out, "clip"), preprocess_cfg)
  with open(os.path.join(clip_dir, DATA_FILE), "w") as f:
    json.dump(data_settings(cfg), f, indent=2)
  final = history[-1]
  results = {"config": dataclasses.asdict(cfg), "model_config": train_clip.open_clip_model_config(
      model_cfg), "caption_tokens": len(seen), "candidates": len(candidates),
      "final": final, "history": history, "seconds": time.time() - t0, "clip_dir": clip_dir}
  with open(os.path.join(cfg.out, "training.json"), "w") as f:
    json.dump(results, f, indent=2)
  plot_curves(os.path.join(cfg.out, "curves.png"), history, final["retrieval_chance"])
  log(f"held-out image->caption top-1 {final['retrieval_top1']:.3f} vs chance "
      f"{final['retrieval_chance']:.4f}; saved {clip_dir}")
  return results


__all__ = ("SyntheticCLIPConfig", "heldout", "read_settings", "run")
