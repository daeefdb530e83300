"""Prompt naturalness: perplexity of prompts under a reference causal LM.

PEZ (`prompt_lm/src/train_prompts.py::evaluate`) reports log-PPL = mean NLL of prompt tokens 2..L given
the previous prompt tokens (first token unscored, no BOS). With `bos=True` (default here) a BOS token
is prepended and all L tokens are scored, so one-token prompts get a value too (baselines.md §4).
Natural log; PPL = exp(mean NLL).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models.tokenizer import Tokenizer


_CHUNK = 64


@functools.lru_cache(maxsize=4)
def _nll_fn(graphdef):
  def nll(state, ids, mask):
    model = nnx.merge(graphdef, state)
    logits = model(ids, attention_mask=mask).logits[:, :-1].astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, -1)
    target = ids[:, 1:]
    tok = -jnp.take_along_axis(logp, target[..., None], -1)[..., 0]
    scored = mask[:, 1:]
    return jnp.sum(tok * scored, 1), jnp.sum(scored, 1)
  return jax.jit(nll)


def prompt_nll(model: nnx.Module, tokenizer: Tokenizer, prompts: list[str], *,
               bos: bool = True, bos_token: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(mean NLL per scored token [P], number of scored tokens [P]) of each prompt string.

  `bos_token` names the start token (default: the tokenizer's BOS, else its EOS).
  """
  start = tokenizer.token_to_id(bos_token) if bos_token else tokenizer.special_id("bos")
  if start is None:
    start = tokenizer.special_id("eos")
  if bos and start is None:
    raise ValueError("bos=True, but the reference tokenizer has neither a BOS nor an EOS token.")
  seqs = [([start] if bos else []) + tokenizer.encode(p) for p in prompts]
  # Chunks of `_CHUNK` sequences padded to a multiple of 16 tokens: the logits of a chunk, not of
  # the whole corpus, are held at once (500 sentences x 49k vocabulary were ~4 GB), and few shapes
  # are compiled.
  length = -(-max(2, max(map(len, seqs))) // 16) * 16
  graphdef, state = nnx.split(model)
  totals, counts = [], []
  for i in range(0, len(seqs), _CHUNK):
    chunk = seqs[i:i + _CHUNK]
    rows = _CHUNK if len(seqs) > _CHUNK else len(chunk)
    ids = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length), bool)
    for j, s in enumerate(chunk):
      ids[j, :len(s)], mask[j, :len(s)] = s, True
    total, count = _nll_fn(graphdef)(state, jnp.asarray(ids), jnp.asarray(mask))
    totals.append(np.asarray(total)[:len(chunk)])
    counts.append(np.asarray(count)[:len(chunk)])
  total, count = np.concatenate(totals), np.concatenate(counts)
  count = np.asarray(count)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, np.asarray(total) / np.maximum(count, 1), np.nan), count


def prompt_perplexity(model: nnx.Module, tokenizer: Tokenizer, prompts: list[str], *,
                      bos: bool = True, bos_token: str | None = None) -> np.ndarray:
  """exp(mean NLL) of each prompt; NaN for a prompt with no scored token."""
  nll, _ = prompt_nll(model, tokenizer, prompts, bos=bos, bos_token=bos_token)
  return np.exp(nll)
