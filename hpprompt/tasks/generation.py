"""Prompted generation by a frozen causal task LM: one jitted sampler over prompts x inputs x
samples.

RLPrompt's `PromptedGenerator.sample_generate` (methods.md §2.2): the text
`'{prompt} "{sentence_1}" "'` is continued by top-k sampling (k = 10, temperature 1, top-p 1) for at
most `max(1.5 n, n + 10)` new tokens (n = tokens of the source sentence), and each continuation is
post-processed: cut at the first `"`, strip, cut after the first `.`, `!` or `?`, lower-cased for
Yelp.

The prompt comes first, so it is a shared prefix. Per batch:
  1. one jitted call (`prefill`) encodes the P prompts once into a KV cache ([P] rows), repeats each
     prompt's cache for the N inputs and encodes `' "{sentence}" "'` ([P N] rows), and repeats each
     (prompt, input) cache for the S samples ([P N S] rows);
  2. jitted calls of `decode` run `compact_every` decoding steps each (a `lax.while_loop` that
     stops early when every row has produced a `"` (or EOS) or reached its limit); between calls,
     once the rows still running fit in half the batch, they are gathered into a smaller one (a
     power of two, at least `MIN_ROWS`: log2(P N S / 8) + 1 compiled shapes at most), so
     finished rows stop costing forward passes (`compact_every=0`: one call,
     all rows to the end, as `sample_tokens`).
Sampling draws argmax(masked logits + Gumbel(fold_in(key, t))[row]), i.e. `jax.random.categorical`
over the top-k logits, with the noise row of the row's index among all P N S rows whatever batch it
runs in: the tokens are the same with and without compaction (tested), and a reference can redraw
them from the same logits.
The prompt and the rest are tokenized separately (byte-level BPE splits before the space of ` "`,
so this equals tokenizing the whole text; tests check it).
"""
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models.tokenizer import Tokenizer

TEMPLATE = '{prompt} "{sentence_1}" "'
MIN_ROWS = 8   # smallest decoding batch after dropping finished rows (few compiled shapes)


def max_new_tokens(source_tokens: int) -> int:
  """RLPrompt's length rule `max(1.5 n, n + 10)` (rounded up, as generate's length check does)."""
  return int(math.ceil(max(1.5 * source_tokens, source_tokens + 10)))


def postprocess(text: str, *, end_punct: str = '"', lower: bool = False) -> str:
  """RLPrompt's `postprocess_output`: cut at `end_punct`, strip, keep up to the first . ! or ?."""
  cut = text.find(end_punct)
  text = (text if cut < 0 else text[:cut]).strip()
  ends = [i for i in (text.find("."), text.find("!"), text.find("?")) if i >= 0]
  text = text[:min(ends) + 1].strip() if ends else text.strip()
  return text.lower() if lower else text


def top_k_sample(logits: jax.Array, key: jax.Array, top_k: int | None) -> jax.Array:
  """Token per row [B] from logits [B, V]: argmax(top-k logits + Gumbel noise of `key`).

  Hugging Face's TopKLogitsWarper keeps logits >= the k-th largest; so does this. The k-th largest
  is read as the min of the top k: on XLA:CPU reading it as `v[:, -1]` compiles the top_k as a full
  sort of every row (10x slower at 128 x 49k, more than the decoding step itself; as in sparsemax).
  """
  return top_k_with_noise(logits, jax.random.gumbel(key, logits.shape), top_k)


def top_k_with_noise(logits: jax.Array, noise: jax.Array, top_k: int | None) -> jax.Array:
  """`top_k_sample` with its Gumbel noise [B, V] given."""
  logits = logits.astype(jnp.float32)
  if top_k:
    kth = jnp.min(jax.lax.top_k(logits, top_k)[0], axis=-1, keepdims=True)
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  return jnp.argmax(logits + noise, axis=-1).astype(jnp.int32)


def _bucket(n: int, step: int = 8) -> int:
  return max(step, -(-n // step) * step)


def _pad(seqs: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
  ids = np.zeros((len(seqs), width), np.int32)
  mask = np.zeros((len(seqs), width), bool)
  for i, s in enumerate(seqs):
    ids[i, :len(s)], mask[i, :len(s)] = s, True
  return ids, mask


def prefill(lm: nnx.Module, prompt_ids, prompt_mask, input_ids, input_mask, *, num_samples: int,
            max_new: int):
  """Prompts [P, Lp] encoded once, inputs [N, Li] continuing each prompt's cache, then each (prompt,
  input) cache repeated for the S samples: (cache, next-token logits) of P N S rows (p, n, s)."""
  p, n, s = prompt_ids.shape[0], input_ids.shape[0], num_samples
  cache = lm.init_cache(p, prompt_ids.shape[1] + input_ids.shape[1] + max_new)
  cache = lm(prompt_ids, attention_mask=prompt_mask, cache=cache, compute_logits=False).cache
  cache = cache.take(jnp.repeat(jnp.arange(p), n))                               # rows (p, n)
  ids, mask = jnp.tile(input_ids, (p, 1)), jnp.tile(input_mask, (p, 1))
  out = lm(ids, attention_mask=mask, cache=cache, compute_logits=False)
  last = jnp.maximum(mask.sum(1) - 1, 0)
  hidden = jnp.take_along_axis(out.hidden, last[:, None, None], axis=1)[:, 0]   # [P N, D]
  rows = jnp.repeat(jnp.arange(p * n), s)                                        # rows (p, n, s)
  return out.cache.take(rows), lm.unembed(hidden)[rows]


def decode(lm: nnx.Module, cache, logits, rows, limit, done, length, t, key, *, steps: int,
           max_new: int, total_rows: int, top_k: int | None, stop_table):
  """Up to `steps` decoding steps from step t of the rows `rows` (their indices among all
  `total_rows`); stops early when every row is done or t reaches max_new.

  Row r draws its token at step t with the noise row `rows[r]` of Gumbel(fold_in(key, t),
  [total_rows, V]), so the tokens do not depend on which rows run together (`Generator` drops
  finished rows between calls). Returns (cache, logits, done, length, t, tokens [b, steps]).
  """
  b, t_start = rows.shape[0], t
  t_end = jnp.minimum(t + steps, max_new)

  def cond(state):
    t, _, _, _, done, _ = state
    return (t < t_end) & ~jnp.all(done)

  def body(state):
    t, cache, logits, tokens, done, length = state
    noise = jax.random.gumbel(jax.random.fold_in(key, t), (total_rows, logits.shape[-1]))
    token = top_k_with_noise(logits, noise[rows] if b < total_rows else noise, top_k)
    tokens = jax.lax.dynamic_update_slice(tokens, jnp.where(done, 0, token)[:, None],
                                          (0, t - t_start))
    length = jnp.where(done, length, t + 1)
    done = done | stop_table[token] | (t + 1 >= limit)
    out = lm(token[:, None], cache=cache)
    return t + 1, out.cache, out.logits[:, -1], tokens, done, length

  state = (t, cache, logits, jnp.zeros((b, steps), jnp.int32), done, length)
  t, cache, logits, tokens, done, length = jax.lax.while_loop(cond, body, state)
  return cache, logits, done, length, t, tokens


def sample_tokens(lm: nnx.Module, prompt_ids, prompt_mask, input_ids, input_mask, limits, key, *,
                  num_samples: int, max_new: int, top_k: int | None, stop_table):
  """Pure sampler, all rows to the end (jit it). Shapes: prompts [P, Lp], inputs [N, Li], limits
  [N]. Returns tokens [P, N, S, max_new] int32 and lengths [P, N, S]: tokens generated up to and
  including the first stop token, or the row's limit."""
  p, n, s = prompt_ids.shape[0], input_ids.shape[0], num_samples
  cache, logits = prefill(lm, prompt_ids, prompt_mask, input_ids, input_mask,
                          num_samples=s, max_new=max_new)
  b = p * n * s
  limit = jnp.tile(jnp.repeat(limits, s), p)
  zeros = jnp.zeros((b,), jnp.int32)
  *_, length, _, tokens = decode(lm, cache, logits, jnp.arange(b), limit, zeros > 0, zeros,
                                 jnp.zeros((), jnp.int32), key, steps=max_new, max_new=max_new,
                                 total_rows=b, top_k=top_k, stop_table=stop_table)
  return tokens.reshape(p, n, s, max_new), length.reshape(p, n, s)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_samples", "max_new", "top_k"))
def _sample_jit(graphdef, state, stop_table, *args, num_samples, max_new, top_k):
  # Module-level so that generators over equal models share compilations.
  return sample_tokens(nnx.merge(graphdef, state), *args, num_samples=num_samples,
                       max_new=max_new, top_k=top_k, stop_table=stop_table)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_samples", "max_new"))
def _prefill_jit(graphdef, state, *args, num_samples, max_new):
  return prefill(nnx.merge(graphdef, state), *args, num_samples=num_samples, max_new=max_new)


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "max_new", "total_rows",
                                             "top_k"))
def _decode_jit(graphdef, state, stop_table, *args, steps, max_new, total_rows, top_k):
  return decode(nnx.merge(graphdef, state), *args, steps=steps, max_new=max_new,
                total_rows=total_rows, top_k=top_k, stop_table=stop_table)


@jax.jit
def _take_rows(cache, rest, idx):
  return cache.take(idx), jax.tree.map(lambda x: x[idx], rest)


def _pow2(n: int) -> int:
  return 1 << max(0, n - 1).bit_length()


@dataclasses.dataclass
class Generator:
  """A task LM with RLPrompt's template and decoding; `generate` returns post-processed texts."""
  model: nnx.Module
  tokenizer: Tokenizer
  template: str = TEMPLATE
  top_k: int | None = 10
  lower: bool = False
  end_punct: str = '"'
  start_token: str | None = None   # prepended to every prompt (e.g. SmolLM2's <|endoftext|>)
  # Decoding steps per call between drops of finished rows (the rows still running are gathered
  # into a batch half as large or less, a power of two); 0: one call runs all rows to the end.
  # The same tokens either way (`decode` draws each row's noise by its index among all rows).
  compact_every: int = 4

  def __post_init__(self):
    if not self.template.startswith("{prompt}") or "{sentence_1}" not in self.template:
      raise ValueError(f"template {self.template!r} must start with {{prompt}} and contain "
                       "{sentence_1}.")
    self.graphdef, self.state = nnx.split(self.model)
    vocab = self.model.output_embedding().shape[0]
    stop = np.zeros((vocab,), bool)
    for i in range(min(vocab, self.tokenizer.vocab_size)):
      stop[i] = self.end_punct in self.tokenizer.decode([i])
    eos = self.tokenizer.special_id("eos")
    if eos is not None:
      stop[eos] = True
    self.stop_table = jnp.asarray(stop)
    self.start_ids = ([] if self.start_token is None
                      else [self.tokenizer.token_to_id(self.start_token)])
    if None in self.start_ids:
      raise ValueError(f"start token {self.start_token!r} is not in the task LM's vocabulary.")
    self.max_positions = getattr(self.model.config, "max_positions", None)

  def encode(self, prompts: list[str], sources: list[str]):
    """(prompt id lists, input id lists, per-input new-token limits)."""
    before, after = self.template.split("{prompt}", 1)
    del before
    prompt_seqs = [self.start_ids + self.tokenizer.encode(p) for p in prompts]
    input_seqs = [self.tokenizer.encode(after.format(sentence_1=s)) for s in sources]
    limits = [max_new_tokens(len(self.tokenizer.encode(s))) for s in sources]
    return prompt_seqs, input_seqs, limits

  def check_length(self, prompts: list[str], sources: list[str]) -> None:
    """ValueError when a prompt + input + generation does not fit the task LM's positions."""
    if self.max_positions is None:
      return
    prompt_seqs, input_seqs, limits = self.encode(prompts, sources)
    need = max(map(len, prompt_seqs)) + max(map(len, input_seqs)) + max(limits)
    if need > self.max_positions:
      raise ValueError(f"prompt + input + {max(limits)} new tokens = {need} tokens exceed the task "
                       f"LM's {self.max_positions} positions.")

  def sample_ids(self, prompts: list[str], sources: list[str], num_samples: int, key):
    """(tokens [P, N, S, T], lengths [P, N, S]) as NumPy arrays.

    Shapes are bucketed (prompts and inputs to powers of two, lengths to multiples of 8 / 32) so
    that few compilations serve a run; padding rows repeat the first prompt / input and are dropped.
    """
    self.check_length(prompts, sources)
    p, n = len(prompts), len(sources)
    prompts = prompts + prompts[:1] * (_pow2(p) - p)
    sources = sources + sources[:1] * (_pow2(n) - n)
    prompt_seqs, input_seqs, limits = self.encode(prompts, sources)
    pids, pmask = _pad(prompt_seqs, _bucket(max(map(len, prompt_seqs)), 8))
    iids, imask = _pad(input_seqs, _bucket(max(map(len, input_seqs)), 32))
    max_new = _bucket(max(limits), 32)
    if self.max_positions is not None:
      max_new = min(max_new, self.max_positions - pids.shape[1] - iids.shape[1])
    arrays = tuple(map(jnp.asarray, (pids, pmask, iids, imask)))
    if not self.compact_every:
      tokens, lengths = _sample_jit(self.graphdef, self.state, self.stop_table, *arrays,
                                    jnp.asarray(limits, jnp.int32), key, num_samples=num_samples,
                                    max_new=max_new, top_k=self.top_k)
      return np.asarray(tokens)[:p, :n], np.asarray(lengths)[:p, :n]
    shape = (len(prompts), len(sources), num_samples)
    limit = np.tile(np.repeat(np.asarray(limits, np.int32), num_samples), len(prompts))
    tokens, lengths = self._decode_compacting(arrays, limit, key, num_samples, max_new)
    return tokens.reshape(shape + (max_new,))[:p, :n], lengths.reshape(shape)[:p, :n]

  def _decode_compacting(self, arrays, limit: np.ndarray, key, num_samples: int, max_new: int):
    """Tokens [B, max_new] and lengths [B] of all B rows, decoded `compact_every` steps per call;
    after a call, the rows still running move to a smaller batch when they fit in half of it."""
    total = limit.shape[0]
    cache, logits = _prefill_jit(self.graphdef, self.state, *arrays, num_samples=num_samples,
                                 max_new=max_new)
    tokens, lengths = np.zeros((total, max_new), np.int32), np.zeros((total,), np.int32)
    rows, real = np.arange(total), np.ones((total,), bool)    # real: not a filler row
    done, length = jnp.zeros((total,), bool), jnp.zeros((total,), jnp.int32)
    limit_d, t = jnp.asarray(limit), 0
    self.decode_rows = []            # rows per decoding call (the compaction, for benchmarks)
    while t < max_new:
      self.decode_rows.append(len(rows))
      cache, logits, done, length, t_d, chunk = _decode_jit(
          self.graphdef, self.state, self.stop_table, cache, logits, jnp.asarray(rows), limit_d,
          done, length, jnp.asarray(t, jnp.int32), key, steps=self.compact_every,
          max_new=max_new, total_rows=total, top_k=self.top_k)
      t_new, finished = int(t_d), np.asarray(done)
      tokens[rows[real], t:t_new] = np.asarray(chunk)[real, :t_new - t]
      lengths[rows[real]] = np.asarray(length)[real]
      t = t_new
      live = np.flatnonzero(~finished & real)
      if len(live) == 0:
        break
      size = max(_pow2(len(live)), MIN_ROWS)
      if size <= len(rows) // 2:   # fillers repeat a running row, marked done, never written
        idx = np.concatenate([live, np.repeat(live[:1], size - len(live))])
        cache, (logits, limit_d, length) = _take_rows(cache, (logits, limit_d, length),
                                                      jnp.asarray(idx))
        rows, real = rows[idx], np.arange(size) < len(live)
        done = jnp.asarray(~real)
    return tokens, lengths

  def generate(self, prompts: list[str], sources: list[str], num_samples: int,
               key) -> list[list[list[str]]]:
    """Post-processed texts [P][N][S] of every prompt on every source."""
    tokens, lengths = self.sample_ids(prompts, sources, num_samples, key)
    p, n, s = lengths.shape
    return [[[postprocess(self.tokenizer.decode(tokens[i, j, k, :lengths[i, j, k]],
                                                skip_special_tokens=True),
                          end_punct=self.end_punct, lower=self.lower) for k in range(s)]
             for j in range(n)] for i in range(p)]
