"""Training a small CLIP from scratch with the symmetric contrastive loss, saved as OpenCLIP.

"Learning Transferable Visual Models From Natural Language Supervision", Radford et al. 2021: for a
batch of N (image, caption) pairs with L2-normalised features I [N, P] and T [N, P] and learned
temperature t, the logits are exp(t) * I T^T and the loss is the mean of the image->text and
text->image cross-entropies with the diagonal as the targets,

  L = ( CE(exp(t) I T^T, diag) + CE(exp(t) T I^T, diag) ) / 2,

with exp(t) clipped at 100 as in CLIP. The model is our NNX `clip.CLIP` (`tiny_config`: a few
layers of width 64 over the full 49,408-id CLIP vocabulary, so `clip_tokenizer` encodes its
inputs unchanged). Training runs on a compact table of the tokens that occur in the captions
(`compact_vocabulary`); `expand_vocabulary` puts those rows back at their CLIP ids and leaves every
other row zero: the model knows only its caption vocabulary, and PEZ's nearest-row projection
never lands on an untrained random row (a zero row has cosine 0 with everything).

`save_open_clip` writes the OpenCLIP model-directory layout (`open_clip_config.json` +
`open_clip_model.safetensors`, the laion/* hub layout) that `clip_loader.load_clip` reads, so the
textual-inversion launcher loads the result like a downloaded CLIP. This module knows nothing of
the data: `hpprompt.launch.synthetic_clip` feeds it the synthetic shapes.
"""
import dataclasses
import functools
import json
import math
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from hpprompt.models import clip
from hpprompt.models import clip_image
from hpprompt.models import openclip

Array = jax.Array
MAX_LOGIT_SCALE = math.log(100.0)


def tiny_config(*, vocab_size: int = 49408, context_length: int = 32, image_size: int = 32,
                patch_size: int = 4, width: int = 64, layers: int = 2, heads: int = 4,
                embed_dim: int = 64) -> clip.CLIPConfig:
  """A small CLIP that OpenCLIP's config can express exactly (exact GELU, argmax pooling)."""
  text = clip.CLIPTextConfig(vocab_size=vocab_size, max_positions=context_length, dim=width,
                             num_layers=layers, num_heads=heads, mlp_dim=4 * width,
                             activation="gelu", eos_token_id=2)
  vision = clip.CLIPVisionConfig(image_size=image_size, patch_size=patch_size, dim=width,
                                 num_layers=layers, num_heads=heads, mlp_dim=4 * width,
                                 activation="gelu")
  return clip.CLIPConfig(text=text, vision=vision, projection_dim=embed_dim)


def open_clip_model_config(cfg: clip.CLIPConfig) -> dict:
  """OpenCLIP's `model_cfg` for `cfg` (the inverse of `openclip.config_from_open_clip`)."""
  t, v = cfg.text, cfg.vision
  if t.activation != "gelu" or v.activation != "gelu" or t.eos_token_id != 2:
    raise ValueError("only exact-GELU configs with argmax pooling (eos_token_id=2) are exported.")
  return {"embed_dim": cfg.projection_dim, "quick_gelu": False,
          "vision_cfg": {"layers": v.num_layers, "width": v.dim, "head_width": v.dim // v.num_heads,
                         "mlp_ratio": v.mlp_dim / v.dim, "patch_size": v.patch_size,
                         "image_size": v.image_size},
          "text_cfg": {"context_length": t.max_positions, "vocab_size": t.vocab_size,
                       "width": t.dim, "heads": t.num_heads, "layers": t.num_layers,
                       "mlp_ratio": t.mlp_dim / t.dim}}


def preprocess_kwargs(preprocess_cfg: dict) -> dict:
  """`preprocess_image` keyword arguments as the loader derives them (`openclip` + `CLIPScorer`)."""
  return openclip.preprocess_config(preprocess_cfg)


def pixels(images: np.ndarray, preprocess_cfg: dict, image_size: int) -> np.ndarray:
  """float32 [N, 3, S, S] of uint8 images [N, H, W, 3], exactly as `CLIPScorer.pixels`."""
  kwargs = {"size": image_size, "crop_size": image_size, **preprocess_kwargs(preprocess_cfg)}
  return np.stack([clip_image.preprocess_image(im, **kwargs) for im in images])


def contrastive_loss(image_embeds: Array, text_embeds: Array, logit_scale: Array) -> Array:
  """CLIP's symmetric cross-entropy over a batch of N matched pairs (features [N, P], any norm)."""
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)
  logits = jnp.exp(logit_scale) * unit(image_embeds) @ unit(text_embeds).T   # [N_image, N_text]
  labels = jnp.arange(logits.shape[0])
  ce = lambda z: optax.softmax_cross_entropy_with_integer_labels(z, labels).mean()
  return 0.5 * (ce(logits) + ce(logits.T))


def seen_tokens(ids: np.ndarray, vocab_size: int) -> np.ndarray:
  """bool [V]: the ids occurring in `ids` (any shape)."""
  seen = np.zeros(vocab_size, bool)
  seen[np.unique(np.asarray(ids))] = True
  return seen


def compact_vocabulary(ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(the seen ids [K] sorted, `ids` renumbered into 0..K-1): training runs on a K-row table,
  `expand_vocabulary` puts its rows back at their ids (the others zero) for saving."""
  seen = np.flatnonzero(seen_tokens(ids, vocab_size))
  lookup = np.zeros(vocab_size, np.int32)
  lookup[seen] = np.arange(len(seen), dtype=np.int32)
  return seen, lookup[np.asarray(ids)]


def expand_vocabulary(model: clip.CLIP, seen: np.ndarray, vocab_size: int) -> clip.CLIP:
  """The model with a `vocab_size`-row token table: row seen[j] = the compact row j, others 0."""
  cfg = dataclasses.replace(model.config, text=dataclasses.replace(model.config.text,
                                                                    vocab_size=vocab_size))
  graphdef, state = nnx.split(nnx.eval_shape(lambda: clip.CLIP(cfg, rngs=nnx.Rngs(0))))
  flat = dict(nnx.to_flat_state(nnx.state(model)))
  key = ("text_model", "token_embedding", "embedding")
  table = np.zeros((vocab_size, cfg.text.dim), np.asarray(flat[key][...]).dtype)
  table[seen] = np.asarray(flat[key][...])
  out = dict(nnx.to_flat_state(state))
  for path, var in out.items():
    var.set_value(jnp.asarray(table) if path == key else flat[path][...])
  return nnx.merge(graphdef, nnx.from_flat_state(out))


def init_model(cfg: clip.CLIPConfig, seed: int) -> clip.CLIP:
  return clip.CLIP(cfg, rngs=nnx.Rngs(seed))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  steps: int = 1500
  batch_size: int = 128
  learning_rate: float = 2e-3
  weight_decay: float = 0.05     # matrices only (not norms, biases, embeddings)
  warmup: int = 100
  eval_every: int = 100
  seed: int = 0


def _decay_mask(params) -> object:
  def keep(path, x):
    names = [str(getattr(p, "key", p)) for p in path]
    return x.ndim >= 2 and not any("embedding" in n for n in names)
  return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup,
                                                max(cfg.steps, cfg.warmup + 1))
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(schedule, weight_decay=cfg.weight_decay, mask=_decay_mask))


@functools.partial(jax.jit, static_argnames=("graphdef", "tx"), donate_argnums=(0, 1))
def train_step(params, opt_state, rest, pixel_values, ids, eot, *, graphdef, tx):
  """One AdamW step on the contrastive loss (the logit scale used is clipped at log(100))."""
  def loss_fn(p):
    model = nnx.merge(graphdef, p, rest)
    return contrastive_loss(model.image_features(pixel_values),
                            model.text_features(ids, eot_index=eot),
                            jnp.minimum(model.logit_scale[...], MAX_LOGIT_SCALE))
  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _embeds(state, pixel_values, ids, eot, *, graphdef):
  model = nnx.merge(graphdef, state)
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)
  return (unit(model.image_features(pixel_values)),
          unit(model.text_features(ids, eot_index=eot)))


def embeds(model: clip.CLIP, pixel_values: np.ndarray, ids: np.ndarray,
           eot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(image [N, P], text [M, P]) L2-normalised features."""
  graphdef, state = nnx.split(model)
  image, text = _embeds(state, jnp.asarray(pixel_values), jnp.asarray(ids), jnp.asarray(eot),
                        graphdef=graphdef)
  return np.asarray(image), np.asarray(text)


def retrieval_top1(model: clip.CLIP, pixel_values: np.ndarray, ids: np.ndarray, eot: np.ndarray,
                   labels: np.ndarray) -> tuple[float, np.ndarray]:
  """(image->caption top-1 accuracy, predicted caption index [N]): image i is right when its most
  similar candidate caption (rows of `ids`) is `labels[i]`."""
  image, text = embeds(model, pixel_values, ids, eot)
  pred = np.argmax(image @ text.T, axis=1)
  return float(np.mean(pred == np.asarray(labels))), pred


def train(cfg: TrainConfig, model: clip.CLIP, pixel_values: np.ndarray, caption_ids: np.ndarray,
          caption_eot: np.ndarray, *, evaluate: Callable[[clip.CLIP], dict] | None = None,
          log: Callable[[dict], None] = print) -> tuple[clip.CLIP, list[dict]]:
  """Trains `model` in place of a copy; returns (model, history).

  Args:
    pixel_values: [N, 3, S, S] preprocessed training images.
    caption_ids: [N, K, T] K captions of each image ([SOT] ... [EOT] 0...); each step draws one of
      the K for every image of the batch.
    caption_eot: [N, K] EOT positions.
    evaluate: called every `eval_every` steps and at the end with the current model; its metrics
      join the history.
  """
  rng = np.random.default_rng(cfg.seed)
  tx = make_optimizer(cfg)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  params = jax.tree.map(jnp.array, params)
  opt_state = tx.init(params)
  n, k = caption_eot.shape
  history, losses, t0 = [], [], time.time()
  for step in range(1, cfg.steps + 1):
    idx = rng.choice(n, size=min(cfg.batch_size, n), replace=False)
    which = rng.integers(0, k, size=len(idx))
    params, opt_state, loss = train_step(
        params, opt_state, rest, jnp.asarray(pixel_values[idx]),
        jnp.asarray(caption_ids[idx, which]), jnp.asarray(caption_eot[idx, which]),
        graphdef=graphdef, tx=tx)
    losses.append(float(loss))
    if step % cfg.eval_every == 0 or step == cfg.steps:
      current = nnx.merge(graphdef, params, rest)
      record = {"step": step, "loss": float(np.mean(losses)), "seconds": time.time() - t0,
                "logit_scale": float(np.exp(current.logit_scale[...]))}
      losses = []
      if evaluate is not None:
        record.update(evaluate(current))
      history.append(record)
      log(record)
  return nnx.merge(graphdef, params, rest), history


def open_clip_state(model: clip.CLIP) -> dict[str, np.ndarray]:
  """The model's tensors under OpenCLIP's names and layouts (torch conventions)."""
  flat = {".".join(str(p) for p in path): np.asarray(v[...], np.float32)
          for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  out = {"token_embedding.weight": flat["text_model.token_embedding.embedding"],
         "positional_embedding": flat["text_model.position_embedding.embedding"],
         "ln_final.weight": flat["text_model.final_layer_norm.scale"],
         "ln_final.bias": flat["text_model.final_layer_norm.bias"],
         "text_projection": flat["text_projection.kernel"],
         "logit_scale": flat["logit_scale"].reshape(()),
         "visual.class_embedding": flat["vision_model.class_embedding"],
         "visual.positional_embedding": flat["vision_model.position_embedding.embedding"],
         "visual.proj": flat["visual_projection.kernel"]}
  v = model.config.vision
  kernel = flat["vision_model.patch_embedding.kernel"]            # [C * p * p, D]
  out["visual.conv1.weight"] = kernel.T.reshape(v.dim, v.num_channels, v.patch_size, v.patch_size)
  for ours, theirs in (("vision_model.pre_layrnorm", "visual.ln_pre"),
                       ("vision_model.post_layernorm", "visual.ln_post")):
    out[f"{theirs}.weight"], out[f"{theirs}.bias"] = flat[f"{ours}.scale"], flat[f"{ours}.bias"]
  for tower, prefix, cfg in (("text_model", "transformer", model.config.text),
                             ("vision_model", "visual.transformer", model.config.vision)):
    for i in range(cfg.num_layers):
      o, t = f"{tower}.layers.{i}", f"{prefix}.resblocks.{i}"
      for a, b in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2")):
        out[f"{t}.{b}.weight"], out[f"{t}.{b}.bias"] = flat[f"{o}.{a}.scale"], flat[f"{o}.{a}.bias"]
      out[f"{t}.attn.in_proj_weight"] = np.concatenate(
          [flat[f"{o}.attn.{n}.kernel"].T for n in "qkv"])
      out[f"{t}.attn.in_proj_bias"] = np.concatenate([flat[f"{o}.attn.{n}.bias"] for n in "qkv"])
      for a, b in (("attn.o", "attn.out_proj"), ("mlp.up", "mlp.c_fc"),
                   ("mlp.down", "mlp.c_proj")):
        out[f"{t}.{b}.weight"] = flat[f"{o}.{a}.kernel"].T
        out[f"{t}.{b}.bias"] = flat[f"{o}.{a}.bias"]
  return {k: np.ascontiguousarray(v) for k, v in out.items()}


def save_open_clip(model: clip.CLIP, directory: str, preprocess_cfg: dict | None = None) -> str:
  """Writes `directory/open_clip_config.json` and `open_clip_model.safetensors`; returns it."""
  from safetensors.numpy import save_file  # noqa: PLC0415
  os.makedirs(directory, exist_ok=True)
  config = {"model_cfg": open_clip_model_config(model.config),
            "preprocess_cfg": dict(preprocess_cfg or {})}
  with open(os.path.join(directory, openclip.CONFIG_FILE), "w") as f:
    json.dump(config, f, indent=2)
  save_file(open_clip_state(model), os.path.join(directory, openclip.WEIGHT_FILES[0]))
  return directory


__all__ = ("TrainConfig", "contrastive_loss", "embeds", "init_model", "make_optimizer",
           "open_clip_model_config", "open_clip_state", "pixels", "retrieval_top1",
           "save_open_clip", "seen_tokens", "tiny_config", "train", "train_step")
