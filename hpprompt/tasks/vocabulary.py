"""Vocabulary helpers of the embedding-level baselines: allowed tokens, round-trip tokens, and the
nearest vocabulary rows of prompt vectors (PEZ's projection, Lester et al.'s reading)."""
import jax
import jax.numpy as jnp
import numpy as np

from hpprompt.models.tokenizer import Tokenizer

Array = jax.Array


def allowed_tokens(tokenizer: Tokenizer, vocab: int, *, exclude_special: bool = True) -> np.ndarray:
  """bool [vocab]: ids the tokenizer knows, minus its special tokens (PEZ's projection targets)."""
  allowed = np.zeros(vocab, bool)
  allowed[:min(vocab, tokenizer.vocab_size)] = True
  if exclude_special:
    allowed[[i for i in tokenizer.special_ids() if i < vocab]] = False
  return allowed


def round_trip_tokens(tokenizer: Tokenizer, vocab: int) -> np.ndarray:
  """bool [vocab]: tokens t whose decoded text encodes back to exactly [t].

  Excludes byte fragments of multi-byte characters (they decode to U+FFFD) and tokens the tokenizer
  would never produce from their own text, two causes of hard prompts that do not survive a
  decode -> encode round trip.
  """
  n = min(vocab, tokenizer.vocab_size)
  texts = [tokenizer.decode([i]) for i in range(n)]
  out = np.zeros(vocab, bool)
  out[:n] = [ids == [i] for i, ids in enumerate(tokenizer.encode_batch(texts))]
  return out


def nearest_ids(prompt: Array, embeddings: Array, allowed: Array | None = None) -> Array:
  """Ids [..., L] of the vocabulary rows nearest to each prompt vector by cosine similarity.

  PEZ (Wen et al. 2023, `optim_utils.nn_project`): both sides L2-normalised, then argmax of the dot
  product; also Lester et al.'s nearest-neighbour reading of soft prompts.
  """
  unit = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
  cos = unit(prompt.astype(jnp.float32)) @ unit(embeddings.astype(jnp.float32)).T   # [..., L, V]
  if allowed is not None:
    cos = jnp.where(allowed, cos, -jnp.inf)
  return jnp.argmax(cos, axis=-1).astype(jnp.int32)
