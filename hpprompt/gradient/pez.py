"""PEZ: hard prompts by projected gradient descent on continuous prompt embeddings.

"Hard Prompts Made Easy: Gradient-Based Discrete Optimization for Prompt Tuning and Discovery", Wen,
Jain, Kirchenbauer, Goldblum, Geiping, Goldstein, NeurIPS 2023 (https://arxiv.org/abs/2302.03668);
code YuxinWenRick/hard-prompts-made-easy @ f22a1be (`optim_utils.py`, `prompt_lm/`), baselines.md
§2. A continuous prompt P [L, D] is kept, and each step:

  1. project  i_j = argmax_v cos(P_j, E_v) over the allowed vocabulary; P' = E[i] (raw rows);
  2. forward  the task LM with exactly P' in the prompt slot; loss L(P');
  3. gradient dL/dP' at the projected point, used as the gradient of P;
  4. AdamW step on P (the continuous variable keeps the optimiser state and the weight decay).

Steps 2-3 are P_st = P' + (P - stop_gradient(P)). Its value is P' exactly: P - P is exactly 0 in
floating point, whereas P + stop_gradient(P' - P) is only P' up to rounding. Its gradient with
respect to P is dL/dP' at P', which is PEZ's manual assignment of the gradient.

Optimiser: AdamW with global-norm clipping 1.0 (the LM code clips at 1.0), as the CLIP code does (lr
0.1, weight decay 0.1). The LM code's Adafactor (lr 0.3) is not used, so that all three baselines
share one optimiser (`soft_prompt.make_optimizer`). The default lr 0.1 is about the embedding scale:
moves of that size change the nearest token.
Projection targets exclude special tokens (decoding would drop or mangle them), ids beyond the
tokenizer's vocabulary and, by default, tokens whose own text does not re-encode to them (byte
fragments of multi-byte characters and the like). The validation set scores the current projection
every `eval_every` steps, and the best one is kept (PEZ's best-prompt tracking, with the validation
score instead of the training score).

The result is a hard prompt: token ids, decoded to a string that hpprompt.tasks evaluates like any
other prompt. Decoding then re-encoding need not give the same ids: byte-level pieces may not be
valid UTF-8 alone, two tokens may merge into a different tokenization, and a first token without a
leading space sits against the template's space. So `EmbeddingTask.prompt_text` strips the
template's own space from the decoded text and reports whether re-encoding gives the ids back
(`round_trip`); the round-trip vocabulary above makes a mismatch rare (only merges across token
boundaries remain). The launcher scores the string, i.e. the tokens it re-encodes to: what a user of
the prompt gets.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.gradient import soft_prompt
from hpprompt.gradient.soft_prompt import Frozen
from hpprompt.tasks import clip_task
from hpprompt.tasks import embedding_task
from hpprompt.tasks.embedding_task import PromptBatch
from hpprompt.training import sharding

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class PEZConfig(soft_prompt.SoftPromptConfig):
  learning_rate: float = 0.1
  weight_decay: float = 0.1        # PEZ's CLIP configuration
  exclude_special: bool = True     # no special tokens in the hard prompt
  round_trip_vocab: bool = True    # only tokens whose text re-encodes to themselves


def project(prompt: Array, embeddings: Array, allowed: Array | None = None) -> tuple[Array, Array]:
  """(ids [L], E[ids] [L, D]): the cosine-nearest allowed vocabulary rows of each prompt vector."""
  ids = embedding_task.nearest_ids(prompt, embeddings, allowed)
  return ids, embeddings[ids].astype(prompt.dtype)


def straight_through(prompt: Array, embeddings: Array,
                     allowed: Array | None = None) -> tuple[Array, Array]:
  """(P_st, ids): value exactly E[ids], gradient w.r.t. P = the gradient at E[ids]."""
  ids, projected = project(prompt, embeddings, allowed)
  return jax.lax.stop_gradient(projected) + (prompt - jax.lax.stop_gradient(prompt)), ids


@functools.partial(jax.jit, static_argnames=("graphdef",))
def loss(params: dict, batch: PromptBatch, frozen: Frozen, key: Array, *,
         graphdef: nnx.GraphDef) -> tuple[Array, dict]:
  """Cross-entropy of the task LM fed the projected prompt; gradient at the projection."""
  del key
  model = nnx.merge(graphdef, frozen.lm_state)
  prompt, ids = straight_through(params["prompt"], frozen.embeddings, frozen.allowed)
  logits = embedding_task.class_logits(model, prompt, batch, frozen.verbalizer_ids)
  return soft_prompt.cross_entropy(logits, batch.labels), {"logits": logits, "ids": ids}


@functools.partial(jax.jit, static_argnames=("graphdef",))
def eval_logits(params: dict, batch: PromptBatch, frozen: Frozen, *,
                graphdef: nnx.GraphDef) -> Array:
  """Logits of the hard prompt: the projection of P."""
  model = nnx.merge(graphdef, frozen.lm_state)
  _, prompt = project(params["prompt"], frozen.embeddings, frozen.allowed)
  return embedding_task.class_logits(model, prompt, batch, frozen.verbalizer_ids)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def clip_loss(params: dict, batch: clip_task.ImageBatch, frozen: Frozen, key: Array, *,
              graphdef: nnx.GraphDef) -> tuple[Array, dict]:
  """PEZ's CLIP loss, 1 - mean cosine with the target images, at the projected prompt."""
  del key
  model = nnx.merge(graphdef, frozen.lm_state)
  prompt, ids = straight_through(params["prompt"], frozen.embeddings, frozen.allowed)
  value, cos = clip_task.cosine_loss(model, prompt, batch)
  return value, {"ids": ids, "clip_score": cos.mean()}


@functools.partial(jax.jit, static_argnames=("graphdef",))
def clip_scores(params: dict, batch: clip_task.ImageBatch, frozen: Frozen, *,
                graphdef: nnx.GraphDef) -> Array:
  """[N] cosine of the hard prompt (the projection of P) with each target."""
  model = nnx.merge(graphdef, frozen.lm_state)
  _, prompt = project(params["prompt"], frozen.embeddings, frozen.allowed)
  return clip_task.cosine_loss(model, prompt, batch)[1]


class PEZ(soft_prompt.SoftPrompt):
  """Projected-gradient hard prompt search on an `EmbeddingTask` (classification: cross-entropy of
  the verbalizers) or a `clip_task.CLIPPromptTask` (textual inversion: 1 - mean cosine)."""
  name = "pez"
  config_class = PEZConfig

  @property
  def on_clip(self) -> bool:
    return isinstance(self.task, clip_task.CLIPPromptTask)

  def make_frozen(self) -> Frozen:
    table = self.task.embeddings
    allowed = embedding_task.allowed_tokens(self.task.tokenizer, table.shape[0],
                                            exclude_special=self.cfg.exclude_special)
    if self.cfg.round_trip_vocab:
      allowed &= embedding_task.round_trip_tokens(self.task.tokenizer, table.shape[0])
    return Frozen(self.task.state, self.task.verbalizer_ids, table,
                  sharding.replicate(jnp.asarray(allowed), self.task.mesh))

  def loss_fn(self):
    return clip_loss if self.on_clip else loss

  def logits_fn(self):
    """Eval outputs: class logits, or the [N] target cosines on CLIP."""
    return clip_scores if self.on_clip else eval_logits

  def ids(self, params: dict) -> np.ndarray:
    return np.asarray(project(params["prompt"], self.frozen.embeddings, self.frozen.allowed)[0])

  def hard_prompt(self, params: dict) -> dict:
    ids = self.ids(params)
    text, round_trip = self.task.prompt_text(ids)
    return {"prompt": text, "ids": [int(i) for i in ids], "round_trip": round_trip}

  def describe(self, params: dict) -> str:
    return self.hard_prompt(params)["prompt"]
