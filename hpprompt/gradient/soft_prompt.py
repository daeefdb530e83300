"""Soft prompt tuning, and the training machinery shared by InfoPrompt and PEZ.

"The Power of Scale for Parameter-Efficient Prompt Tuning", Lester, Al-Rfou, Constant, EMNLP 2021
(https://arxiv.org/abs/2104.08691). A frozen task LM, trainable prompt embeddings P in R^{L x D} in
the template's {prompt} slot (`embedding_task`), and only P trained on the verbalizer cross-entropy:

  min_P  -(1/B) sum_b log softmax_c( logit_c(LM(head(x_b); P; tail)) )[y_b].

Initialisations (google-research/prompt-tuning `prompts.py`, baselines.md §3.1):
  uniform  U[-scale, scale] with scale 0.5, the paper's and OpenPrompt's range. Not Flax's
           `initializers.uniform(0.5)`, which samples [0, 0.5) (the T5X default).
  vocab    rows of the embedding table drawn without replacement from the first 5,000 ids (with
           replacement only if L > 5,000). T5's ids are frequency ordered, BPE merges roughly so.
  class    position i = embedding of class label word i (the verbalizer; mean over its sub-word
           pieces), the remaining positions as `vocab`.

Optimiser: AdamW with global-norm clipping (optax) for all three baselines, so they differ only in
what is trained and the loss. Lester et al. used Adafactor at lr 0.3 on T5. InfoPrompt's code uses
AdamW at 1e-3 on RoBERTa-large. Few-shot runs here take few steps, so the default lr is higher.

`train_step(state, batch, frozen, *, loss_fn, optimizer)` is the generic pure step; each method's
`train_step(state, batch) -> (state, metrics)` runs it through `jit_train_step`, compiled once per
(loss, configuration, shapes). The frozen LM enters as `nnx.split` state, an argument of `jax.jit`,
never a baked-in constant. `TrainState` is a pytree (flax.struct) that Orbax saves whole, including
the best validation parameters.
"""
import dataclasses
import functools
from typing import Any
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax import struct

from hpprompt.tasks import embedding_task
from hpprompt.tasks.embedding_task import EmbeddingTask
from hpprompt.tasks.embedding_task import PromptBatch
from hpprompt.training import sharding

Array = jax.Array
INITS = ("uniform", "vocab", "class")


# ---- initialisation ------------------------------------------------------------------------------

def uniform_init(key: Array, length: int, dim: int, scale: float = 0.5) -> Array:
  """U[-scale, scale] [L, D] (Lester et al.; OpenPrompt `SoftTemplate`: uniform_(-0.5, 0.5))."""
  return jax.random.uniform(key, (length, dim), jnp.float32, -scale, scale)


def vocab_init(key: Array, embeddings: Array, length: int, population: int = 5000) -> Array:
  """Embedding rows of L ids drawn from the first `population` ids (sampled vocabulary)."""
  pop = min(population, embeddings.shape[0])
  ids = jax.random.choice(key, pop, (length,), replace=length > pop)
  return embeddings[ids].astype(jnp.float32)


def class_label_init(key: Array, embeddings: Array, length: int, label_ids: list[list[int]],
                     population: int = 5000) -> Array:
  """Position i = mean embedding of label word i's pieces; the rest sampled vocabulary."""
  rows = vocab_init(key, embeddings, length, population)
  for i, ids in enumerate(label_ids[:length]):
    rows = rows.at[i].set(embeddings[jnp.asarray(ids)].astype(jnp.float32).mean(0))
  return rows


def init_prompt(key: Array, kind: str, embeddings: Array, length: int, *,
                label_ids: list[list[int]] | None = None, scale: float = 0.5,
                population: int = 5000) -> Array:
  """A [L, D] float32 prompt initialised as `kind` (one of INITS)."""
  if kind == "uniform":
    return uniform_init(key, length, embeddings.shape[1], scale)
  if kind == "vocab":
    return vocab_init(key, embeddings, length, population)
  if kind == "class":
    return class_label_init(key, embeddings, length, label_ids or [], population)
  raise ValueError(f"unknown prompt initialisation {kind!r}; choose one of {INITS}.")


# ---- configuration and state ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SoftPromptConfig:
  prompt_length: int = 5
  init: str = "vocab"           # uniform | vocab | class
  init_scale: float = 0.5       # uniform: U[-init_scale, init_scale]
  population: int = 5000        # vocab / class: ids drawn from the first `population`
  learning_rate: float = 0.01
  weight_decay: float = 0.01    # AdamW (decoupled); PyTorch's default, as InfoPrompt's code
  grad_clip: float = 1.0        # global norm
  # Learning-rate schedule (InfoPrompt's code: transformers' get_linear_schedule_with_warmup with 6%
  # warm-up): linear warm-up from 0 over warmup_fraction x schedule_steps, then, with linear_decay,
  # linear decay to 0 at schedule_steps. Constant when both are off. The launcher sets
  # schedule_steps to the run's steps.
  warmup_fraction: float = 0.0
  linear_decay: bool = False
  schedule_steps: int = 0

  def problems(self) -> list[tuple[str, str]]:
    """(field, message) for every invalid setting."""
    out = []
    if self.prompt_length < 1:
      out.append(("prompt_length", f"must be >= 1, got {self.prompt_length}."))
    if self.init not in INITS:
      out.append(("init", f"unknown initialisation {self.init!r}; choose one of {INITS}."))
    for name in ("init_scale", "learning_rate", "grad_clip", "population"):
      if not getattr(self, name) > 0:
        out.append((name, f"must be > 0, got {getattr(self, name)}."))
    if self.weight_decay < 0:
      out.append(("weight_decay", f"must be >= 0, got {self.weight_decay}."))
    if not 0 <= self.warmup_fraction < 1:
      out.append(("warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}."))
    if (self.warmup_fraction or self.linear_decay) and self.schedule_steps < 1:
      out.append(("schedule_steps", "a warm-up or decay needs schedule_steps >= 1."))
    return out


@struct.dataclass
class Frozen:
  """Arrays the losses read but never train."""
  lm_state: Any                     # nnx.split state of the task LM
  verbalizer_ids: Array             # [C]
  embeddings: Array | None = None   # [V, D] vocabulary table (PEZ)
  allowed: Array | None = None      # [V] bool, projection targets (PEZ)


@struct.dataclass
class TrainState:
  step: Array
  params: Any
  opt_state: Any
  key: Array
  best_params: Any          # parameters at the best validation score so far
  best_score: Array         # -inf before the first evaluation
  best_step: Array          # 0 before the first evaluation


def learning_rate_schedule(cfg: SoftPromptConfig) -> optax.Schedule | float:
  """The lr at update count n (0-based): n / W x lr during the W = int(warmup_fraction x S) warm-up
  updates, then (S - n) / (S - W) x lr with `linear_decay` (else lr), S = schedule_steps."""
  if not (cfg.warmup_fraction or cfg.linear_decay):
    return cfg.learning_rate
  total = cfg.schedule_steps
  warmup = int(cfg.warmup_fraction * total)
  after = (optax.linear_schedule(cfg.learning_rate, 0.0, max(total - warmup, 1))
           if cfg.linear_decay else optax.constant_schedule(cfg.learning_rate))
  if warmup == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, warmup), after],
                              [warmup])


def make_optimizer(cfg: SoftPromptConfig) -> optax.GradientTransformation:
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                     optax.adamw(learning_rate_schedule(cfg), weight_decay=cfg.weight_decay))


# ---- loss and step -------------------------------------------------------------------------------

def cross_entropy(logits: Array, labels: Array) -> Array:
  """Mean of -log softmax(logits)[label] over the batch."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1).mean()


@functools.partial(jax.jit, static_argnames=("graphdef",))
def loss(params: dict, batch: PromptBatch, frozen: Frozen, key: Array, *,
         graphdef: nnx.GraphDef) -> tuple[Array, dict]:
  """Lester et al.'s objective: cross-entropy of the verbalizer logits; aux has the logits."""
  del key
  model = nnx.merge(graphdef, frozen.lm_state)
  logits = embedding_task.class_logits(model, params["prompt"], batch, frozen.verbalizer_ids)
  return cross_entropy(logits, batch.labels), {"logits": logits}


@functools.partial(jax.jit, static_argnames=("graphdef",))
def eval_logits(params: dict, batch: PromptBatch, frozen: Frozen, *,
                graphdef: nnx.GraphDef) -> Array:
  model = nnx.merge(graphdef, frozen.lm_state)
  return embedding_task.class_logits(model, params["prompt"], batch, frozen.verbalizer_ids)


def train_step(state: TrainState, batch: PromptBatch, frozen: Frozen, *, loss_fn,
               optimizer: optax.GradientTransformation) -> tuple[TrainState, dict]:
  """One optimiser step on `loss_fn(params, batch, frozen, key) -> (loss, aux with 'logits')`."""
  key, sub = jax.random.split(state.key)
  (value, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, frozen, sub)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  aux = dict(aux)
  logits = aux.pop("logits", None)    # None: a task without classes (PEZ on CLIP)
  metrics = {"loss": value, "grad_norm": optax.tree.norm(grads), **aux}
  if logits is not None:
    metrics["train_acc"] = jnp.mean(jnp.argmax(logits, -1) == batch.labels)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state, key=key), metrics


@dataclasses.dataclass(frozen=True)
class BoundLoss:
  """A loss with its static keyword arguments, hashable by value (a static jit argument), so runs
  with the same model structure and configuration share one compiled train step."""
  fn: Callable
  kwargs: tuple = ()

  def __call__(self, params, batch, frozen, key):
    return self.fn(params, batch, frozen, key, **dict(self.kwargs))


@functools.partial(jax.jit, static_argnames=("loss_fn", "cfg"))
def jit_train_step(state: TrainState, batch: PromptBatch, frozen: Frozen, *, loss_fn: BoundLoss,
                   cfg: SoftPromptConfig) -> tuple[TrainState, dict]:
  """`train_step` with the optimiser built from `cfg`, compiled once per (loss, config, shapes)."""
  return train_step(state, batch, frozen, loss_fn=loss_fn, optimizer=make_optimizer(cfg))


# ---- the method object ---------------------------------------------------------------------------

class SoftPrompt:
  """Soft prompt tuning on an `EmbeddingTask`: init, jitted train step, eval logits, best prompt."""
  name = "soft"
  config_class = SoftPromptConfig
  needs_null = False          # training batches need InfoPrompt's prompt-free pass

  def __init__(self, task: EmbeddingTask, cfg: SoftPromptConfig):
    self.task, self.cfg = task, cfg
    self.optimizer = make_optimizer(cfg)
    self.frozen = self.make_frozen()
    self._loss = BoundLoss(self.loss_fn(), tuple(self.static_kwargs().items()))
    self._logits = functools.partial(self.logits_fn(), **self.static_kwargs())

  @property
  def eval_needs_null(self) -> bool:
    return False

  def make_frozen(self) -> Frozen:
    return Frozen(self.task.state, self.task.verbalizer_ids)

  def loss_fn(self):
    return loss

  def static_kwargs(self) -> dict:
    """Static keyword arguments of the loss and eval functions."""
    return {"graphdef": self.task.graphdef}

  def logits_fn(self):
    return eval_logits

  def label_ids(self) -> list[list[int]]:
    return [self.task.tokenizer.encode(v) for v in self.task.verbalizers]

  def init_prompt(self, key: Array) -> Array:
    return init_prompt(key, self.cfg.init, self.task.embeddings, self.cfg.prompt_length,
                       label_ids=self.label_ids(), scale=self.cfg.init_scale,
                       population=self.cfg.population)

  def init_params(self, key: Array) -> dict:
    return {"prompt": self.init_prompt(key)}

  def init(self, seed: int) -> TrainState:
    k_init, k_run = jax.random.split(jax.random.PRNGKey(seed))
    params = self.init_params(k_init)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                       opt_state=self.optimizer.init(params), key=k_run,
                       best_params=jax.tree.map(jnp.copy, params),
                       best_score=jnp.asarray(-jnp.inf, jnp.float32),
                       best_step=jnp.zeros((), jnp.int32))
    return self.place(state)

  def place(self, state: TrainState) -> TrainState:
    return sharding.replicate(state, self.task.mesh)

  def train_step(self, state: TrainState, batch: PromptBatch) -> tuple[TrainState, dict]:
    return jit_train_step(state, batch, self.frozen, loss_fn=self._loss, cfg=self.cfg)

  def logits(self, params: dict, batch: PromptBatch) -> Array:
    """Eval-mode verbalizer logits [B, C]."""
    return self._logits(params, batch, self.frozen)

  def record_best(self, state: TrainState, score: float) -> tuple[TrainState, bool]:
    """Keeps the parameters if `score` beats the best validation score (ties: the earlier stays)."""
    if not score > float(state.best_score):
      return state, False
    return state.replace(best_params=jax.tree.map(jnp.copy, state.params),
                         best_score=jnp.asarray(score, jnp.float32), best_step=state.step), True

  def nearest_tokens(self, prompt: Array) -> list[str]:
    allowed = embedding_task.allowed_tokens(self.task.tokenizer, self.task.embeddings.shape[0])
    ids = np.asarray(embedding_task.nearest_ids(prompt, self.task.embeddings, allowed))
    return [self.task.tokenizer.decode(row) for row in ids.reshape(-1, 1)]

  def describe(self, params: dict) -> str:
    """Lester et al.'s reading of a soft prompt: its cosine-nearest vocabulary tokens."""
    return "<soft>" + "|".join(self.nearest_tokens(params["prompt"]))

  def hard_prompt(self, params: dict) -> dict | None:
    """PEZ's result as {'prompt', 'ids', 'round_trip'}; None for continuous prompts."""
    del params
    return None
