"""BERTScore (Zhang et al., ICLR 2020, "BERTScore: Evaluating Text Generation with BERT", Eqs. 1-3)
over any of our encoders, in JAX.

Each sentence is embedded by the hidden states after layer `layer` (BERT/RoBERTa: the `layer`-th block's
output, as the `bert-score` package truncates the encoder; causal LMs: the same for their blocks, so
each token sees only its left context). Tokens are greedily matched by cosine similarity:
  P = sum_i w(h_i) max_j cos(h_i, r_j) / sum_i w(h_i),  R = the same from the reference side,
  F = 2 P R / (P + R),
with weights w = 1, or IDF over the references `log((M + 1) / (df + 1))`; the start/end special tokens
(`<s>`, `</s>` / [CLS], [SEP]) are embedded but weigh 0. Baseline rescaling: (x - b) / (1 - b).
A sentence with no weighted token scores 0 (the package's rule). The package pads a batch with zero
similarities, so its max can be 0 when every real cosine is negative; we take the max over real
tokens only (equal to the package with batch_size=1, which the tests use).
"""
import collections
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models import bert
from hpprompt.models import gpt2
from hpprompt.models import llama
from hpprompt.models.cache import make_mask
from hpprompt.models.tokenizer import Tokenizer


def layer_states(model: nnx.Module, ids: jax.Array, mask: jax.Array, layer: int) -> jax.Array:
  """Hidden states [B, T, D] after the first `layer` blocks of a BERT/RoBERTa, Llama or GPT-2."""
  if isinstance(model, (bert.BertForMaskedLM, bert.BertClassifier)):
    enc = model.encoder
    attn, pos = make_mask(mask, causal=False)
    x = enc.embed(ids) + enc.position_embeddings(pos + enc.config.position_offset)
    x = enc.embed_norm(x + enc.token_type_embeddings.embedding[0].astype(x.dtype))
    for block in list(enc.layers)[:layer]:
      x = block(x, attn)
    return x
  attn, pos = make_mask(mask, causal=True)
  if isinstance(model, llama.Llama):
    x = model.embed(ids)
  elif isinstance(model, gpt2.GPT2):
    x = model.embed(ids) + model.wpe(pos)
  else:
    raise ValueError(f"BERTScore: no layer states for {type(model).__name__}; "
                     "supported: BERT, RoBERTa, Llama (SmolLM2), GPT-2.")
  for i, block in enumerate(list(model.layers)[:layer]):
    x, _ = block(x, attn, pos, None, i) if isinstance(model, llama.Llama) else block(x, attn, None, i)
  return x


def greedy_match(hyp: jax.Array, hyp_w: jax.Array, ref: jax.Array, ref_w: jax.Array,
                 hyp_mask: jax.Array, ref_mask: jax.Array) -> jax.Array:
  """(P, R, F) of one pair: embeddings [Th, D] / [Tr, D], weights and masks [Th] / [Tr]."""
  unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True).clip(1e-30)
  sim = unit(hyp.astype(jnp.float32)) @ unit(ref.astype(jnp.float32)).T
  sim = jnp.where(hyp_mask[:, None] & ref_mask[None, :], sim, -jnp.inf)
  best_h = jnp.where(hyp_mask, sim.max(1), 0.0)
  best_r = jnp.where(ref_mask, sim.max(0), 0.0)
  wh, wr = hyp_w.sum(), ref_w.sum()
  p = jnp.where(wh > 0, (best_h * hyp_w).sum() / jnp.where(wh > 0, wh, 1), 0.0)
  r = jnp.where(wr > 0, (best_r * ref_w).sum() / jnp.where(wr > 0, wr, 1), 0.0)
  empty = (wh <= 0) | (wr <= 0)
  f = jnp.where(empty | (p + r == 0), 0.0, 2 * p * r / jnp.where(p + r == 0, 1, p + r))
  return jnp.stack([jnp.where(empty, 0.0, p), jnp.where(empty, 0.0, r), f])


def idf_weights(token_lists: list[list[int]]) -> collections.defaultdict:
  """token id -> log((M + 1) / (df + 1)) over M reference token lists (unseen: log(M + 1))."""
  df = collections.Counter(t for ids in token_lists for t in set(ids))
  m = len(token_lists)
  out = collections.defaultdict(lambda: math.log(m + 1))
  out.update({t: math.log((m + 1) / (c + 1)) for t, c in df.items()})
  return out


def _bucket(n: int, step: int = 8) -> int:
  return max(step, -(-n // step) * step)


def _pow4(n: int) -> int:
  """Row bucket: 4, 16, 64, ... (few compilations)."""
  size = 4
  while size < n:
    size *= 4
  return size


@functools.partial(jax.jit, static_argnames=("graphdef", "layer"))
def _embed_jit(graphdef, layer, state, ids, mask):
  return layer_states(nnx.merge(graphdef, state), ids, mask, layer).astype(jnp.float32)


class BERTScorer:
  """BERTScore of candidate vs reference sentences with one encoder at one layer.

  `start`, `end`: special tokens put around every sentence with weight 0 (default: the tokenizer's
  cls/bos and sep/eos for bidirectional encoders; start = bos/eos only for causal LMs).
  `prefix_space`: encode ' ' + sentence (what the package asks RoBERTa / GPT-2 tokenizers for; under
    transformers 5 their fast tokenizers ignore that flag, so the package then encodes without it:
    pass False to match such a set-up).
  `baseline`: (P, R, F) baselines for rescaling, or None.
  """

  def __init__(self, model: nnx.Module, tokenizer: Tokenizer, *, layer: int, idf: bool = False,
               baseline: tuple[float, float, float] | None = None, prefix_space: bool = True,
               start: str | None = "auto", end: str | None = "auto", batch_size: int = 64,
               max_tokens: int = 256):
    self.graphdef, self.state = nnx.split(model)
    self.tokenizer, self.layer, self.idf = tokenizer, layer, idf
    self.baseline = None if baseline is None else np.asarray(baseline, np.float64)
    self.prefix_space, self.batch_size, self.max_tokens = prefix_space, batch_size, max_tokens
    causal = not isinstance(model, (bert.BertForMaskedLM, bert.BertClassifier))
    sid = lambda *names: next((tokenizer.special_id(n) for n in names
                               if tokenizer.special_id(n) is not None), None)
    self.start_id = (sid("cls", "bos", "eos") if start == "auto" else
                     (tokenizer.token_to_id(start) if start else None))
    self.end_id = ((None if causal else sid("sep", "eos")) if end == "auto" else
                   (tokenizer.token_to_id(end) if end else None))
    self._cache: dict[str, np.ndarray] = {}

  def encode(self, sentence: str) -> list[int]:
    sentence = sentence.strip()
    text = " " + sentence if self.prefix_space and sentence else sentence
    ids = self.tokenizer.encode(text)[:self.max_tokens - 2]
    return ([self.start_id] if self.start_id is not None else []) + ids + (
        [self.end_id] if self.end_id is not None else [])

  def embeddings(self, sentences: list[str]) -> list[np.ndarray]:
    """Per-sentence token embeddings [T_i, D], each distinct sentence embedded once per call.

    Nothing is kept between calls: an embedding then depends only on the call's sentences (its
    batch padding), so a resumed run recomputes exactly what an uninterrupted one did.
    """
    self._cache = {}
    new = sorted(set(sentences), key=lambda s: (len(self.encode(s)), s))
    for i in range(0, len(new), self.batch_size):
      chunk = new[i:i + self.batch_size]
      seqs = [self.encode(s) for s in chunk]
      width = _bucket(max(map(len, seqs)), 32)
      ids = np.zeros((_pow4(len(seqs)), width), np.int32)
      mask = np.zeros(ids.shape, bool)
      for j, s in enumerate(seqs):
        ids[j, :len(s)], mask[j, :len(s)] = s, True
      mask[len(seqs):, 0] = True
      out = np.asarray(_embed_jit(self.graphdef, self.layer, self.state, jnp.asarray(ids),
                                  jnp.asarray(mask)))
      for j, (s, seq) in enumerate(zip(chunk, seqs)):
        self._cache[s] = out[j, :len(seq)]
    return [self._cache[s] for s in sentences]

  def _weights(self, seq: list[int], idf) -> np.ndarray:
    w = np.asarray([idf[t] if idf is not None else 1.0 for t in seq], np.float32)
    for k, t in enumerate(seq):
      if t is not None and t in (self.start_id, self.end_id) and (
          (k == 0 and self.start_id is not None) or
          (k == len(seq) - 1 and self.end_id is not None)):
        w[k] = 0.0
    return w

  def score(self, candidates: list[str], references: list[str]) -> np.ndarray:
    """[3, N] (P, R, F) of each candidate against its reference, rescaled if a baseline is set."""
    if len(candidates) != len(references):
      raise ValueError(f"{len(candidates)} candidates but {len(references)} references.")
    idf = idf_weights([self.encode(r) for r in references]) if self.idf else None
    embedded = self.embeddings(list(candidates) + list(references))
    hyp_e, ref_e = embedded[:len(candidates)], embedded[len(candidates):]
    th = _bucket(max(len(e) for e in hyp_e), 32)
    tr = _bucket(max(len(e) for e in ref_e), 32)
    n, d = _pow4(len(candidates)), hyp_e[0].shape[-1]
    arrays = {k: np.zeros(shape, dt) for k, shape, dt in (
        ("h", (n, th, d), np.float32), ("r", (n, tr, d), np.float32),
        ("hw", (n, th), np.float32), ("rw", (n, tr), np.float32),
        ("hm", (n, th), bool), ("rm", (n, tr), bool))}
    for i, (c, r) in enumerate(zip(candidates, references)):
      for key, emb, text, width in (("h", hyp_e[i], c, th), ("r", ref_e[i], r, tr)):
        t = len(emb)
        arrays[key][i, :t], arrays[key + "m"][i, :t] = emb, True
        arrays[key + "w"][i, :t] = self._weights(self.encode(text), idf)
    out = np.asarray(_match_batch(*(jnp.asarray(arrays[k]) for k in
                                    ("h", "hw", "r", "rw", "hm", "rm")))).T.astype(np.float64)
    out = out[:, :len(candidates)]
    if self.baseline is not None:
      out = (out - self.baseline[:, None]) / (1 - self.baseline[:, None])
    return out


_match_batch = jax.jit(jax.vmap(greedy_match))
