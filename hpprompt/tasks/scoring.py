"""Verbalizer logits of a frozen task LM for every (example, prompt) pair.

`CausalScorer` (GPT-2, OPT, Llama/SmolLM2 task LMs, template with the prompt after the input): every
input is encoded once into a KV cache; each step's P prompts are scored as continuations of all N
cached inputs through `SharedPrefix` attention, so a step costs N x P x (prompt tokens) tokens however
long the inputs are. `FullScorer` renders and runs whole sequences (masked LMs such as RoBERTa, and
causal templates with the prompt before the input) and reads the logits at `<mask>` or at the last
token. Examples are padded to a multiple of the device count and sharded over the mesh's 'data' axis.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.metrics.flops import ForwardFlops
from hpprompt.models.base import CausalLM
from hpprompt.models.base import verbalizer_logits  # also tasks.scoring.verbalizer_logits
from hpprompt.models.cache import KVCache
from hpprompt.models.cache import SharedPrefix
from hpprompt.models.tokenizer import Tokenizer
from hpprompt.tasks.data import Example
from hpprompt.tasks.templates import Template
from hpprompt.tasks.templates import TemplateError
from hpprompt.tasks.templates import verbalizer_ids
from hpprompt.training import sharding


def _bucket(n: int, step: int) -> int:
  return max(step, -(-n // step) * step)


def _pad_batch(seqs: list[list[int]], length: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
  ids = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), bool)
  for i, s in enumerate(seqs):
    ids[i, :len(s)] = s
    mask[i, :len(s)] = True
  return ids, mask


def truncate(seqs: list[list[int]], max_length: int, side: str, keep_start: int = 0,
             keep_end: int = 0) -> list[list[int]]:
  """Sequences cut to `max_length` tokens as Hugging Face tokenizers truncate (RLPrompt's
  `truncation=True`): the first `keep_start` and last `keep_end` tokens (the special tokens the
  tokenizer added, e.g. RoBERTa's <s> and </s>) stay; content is dropped on the `side` given."""
  if side not in ("left", "right"):
    raise ValueError(f"truncation side must be 'left' or 'right', got {side!r}.")
  room = max_length - keep_start - keep_end
  out = []
  for s in seqs:
    if len(s) <= max_length:
      out.append(s)
      continue
    start, content, end = s[:keep_start], s[keep_start:len(s) - keep_end], s[len(s) - keep_end:]
    content = content[len(content) - room:] if side == "left" else content[:room]
    out.append(start + content + end)
  return out


def _added_specials(tokenizer: Tokenizer) -> tuple[int, int]:
  """(tokens added before, after) the text by `encode(..., add_special_tokens=True)`."""
  plain = tokenizer.encode_batch(["a"], add_special_tokens=False)[0]
  full = tokenizer.encode_batch(["a"], add_special_tokens=True)[0]
  for i in range(len(full) - len(plain) + 1):
    if full[i:i + len(plain)] == plain:
      return i, len(full) - i - len(plain)
  return 0, 0


@dataclasses.dataclass
class _Chunk:
  cache: KVCache      # encoded inputs (rows padded to the device multiple)
  num: int            # real examples in the chunk
  longest: int        # tokens of the longest input
  lengths: list[int]  # tokens of each real input


class Scorer:
  """Common set-up: split model state, verbalizer ids, mesh."""

  def __init__(self, model: nnx.Module, tokenizer: Tokenizer, template: Template,
               verbalizers: tuple[str, ...], *, mesh: jax.sharding.Mesh | None = None,
               chunk_size: int = 256, prompt_group: int = 4, cache_bytes: int = 1 << 30):
    self.graphdef, self.state = nnx.split(model)
    self.model = model
    self.tokenizer = tokenizer
    self.template = template
    self.verbalizer_ids = jnp.asarray(verbalizer_ids(tokenizer, verbalizers))
    self.mesh = mesh or sharding.make_mesh()
    self.devices = self.mesh.devices.size
    self.chunk_size = _bucket(chunk_size, self.devices)
    self.prompt_group = prompt_group
    self.cache_bytes = cache_bytes       # encoded inputs kept between calls up to this size
    self.pad_id = tokenizer.special_id("pad") or 0
    self.state = sharding.replicate(self.state, self.mesh)
    self.max_positions = getattr(getattr(model, "config", None), "max_positions", None)
    self.flops = 0          # task-LM FLOPs of the real tokens scored so far (hpprompt.metrics.flops)

  @functools.cached_property
  def flop_counter(self):
    return ForwardFlops.of(self.model, self.verbalizer_ids)

  def prompt_text(self, prompt: str) -> str:
    return prompt

  def class_logits(self, prompts: list[str], examples: list[Example]) -> np.ndarray:
    raise NotImplementedError


class CausalScorer(Scorer):
  """Causal task LM; inputs before {prompt} are encoded once per example set (see module doc)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if not self.template.prompt_after_inputs:
      raise TemplateError(f"{self.template.text!r}: CausalScorer needs the prompt after the inputs; "
                          "use FullScorer.")
    self._encoded: dict[tuple, list] = {}

  @functools.cached_property
  def _encode_fn(self):
    graphdef = self.graphdef

    def encode(state, ids, mask):
      model = nnx.merge(graphdef, state)
      cache = model.init_cache(ids.shape[0], ids.shape[1])
      return model(ids, attention_mask=mask, cache=cache, compute_logits=False).cache
    return jax.jit(encode)

  @functools.cached_property
  def _score_fn(self):
    graphdef = self.graphdef

    def score(state, prefix, ids, mask, last, verb_ids):
      model = nnx.merge(graphdef, state)
      hidden = model(ids, attention_mask=mask, cache=prefix, compute_logits=False).hidden
      h = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
      return verbalizer_logits(model, h, verb_ids)
    return jax.jit(score)

  def _kv_bytes_per_token(self) -> int:
    itemsize = jnp.dtype(self.model.config.dtype).itemsize
    return 2 * self.model.num_layers * self.model.num_kv_heads * self.model.head_dim * itemsize

  def _chunks(self, examples: list[Example]):
    """Yields (example indices, encoded chunk): inputs sorted by length, each chunk padded to a
    multiple of 16 tokens (little padding, few distinct shapes), rows to a fixed count."""
    texts = [self.template.split_at_prompt(e.text, e.text_b)[0] for e in examples]
    seqs = self.tokenizer.encode_batch(texts, add_special_tokens=True)
    order = np.argsort([len(q) for q in seqs], kind="stable")
    rows = min(self.chunk_size, _bucket(len(seqs), self.devices))
    for start in range(0, len(seqs), rows):
      idx = order[start:start + rows]
      part = [seqs[i] for i in idx]
      ids, mask = _pad_batch(part, _bucket(max(map(len, part)), 16), self.pad_id)
      ids, mask = sharding.pad_rows(ids, rows), sharding.pad_rows(mask, rows)
      mask[len(part):, 0] = True            # padding rows: one dummy token keeps softmax finite
      cache = self._encode_fn(self.state, *sharding.shard((ids, mask), self.mesh))
      lengths = [len(q) for q in part]
      self.flops += self.flop_counter.sequences(lengths, causal=True, reads=False)
      yield idx, _Chunk(cache, len(part), max(lengths), lengths)

  def encode(self, examples: list[Example]):
    """The encoded inputs: kept for reuse when they fit in `cache_bytes` (training and validation
    sets, scored every step), otherwise streamed chunk by chunk (a large test set)."""
    key = tuple(examples)
    if key in self._encoded:
      return self._encoded[key]
    tokens = sum(len(e.text) for e in examples) // 3 + len(examples)     # rough token count
    if tokens * self._kv_bytes_per_token() > self.cache_bytes:
      return self._chunks(examples)
    chunks = list(self._chunks(examples))
    self._encoded[key] = chunks
    return chunks

  def class_logits(self, prompts: list[str], examples: list[Example]) -> np.ndarray:
    """[N, P, C] verbalizer logits of every example under every prompt.

    Prompts go through in groups of `prompt_group` (the last one padded by repetition) and their
    continuations are padded to a multiple of 4 tokens, so a run compiles the scorer only a few times.
    """
    _, cont_format = self.template.split_at_prompt("", None)
    seqs = self.tokenizer.encode_batch([cont_format.replace("{prompt}", p) for p in prompts])
    if min(map(len, seqs)) == 0:
      raise TemplateError("a prompt and template tail tokenized to nothing; nothing to score.")
    ids, mask = _pad_batch(seqs, _bucket(max(map(len, seqs)), 4), self.pad_id)
    last = mask.sum(1) - 1
    group = min(self.prompt_group, len(prompts))
    out = np.zeros((len(examples), len(prompts), len(self.verbalizer_ids)), np.float32)
    cont_lengths = [len(q) for q in seqs]
    for idx, chunk in self.encode(examples):
      self.flops += self.flop_counter.continuations(chunk.lengths, cont_lengths)
      if self.max_positions and chunk.longest + ids.shape[1] > self.max_positions:
        raise TemplateError(
            f"an input of {chunk.longest} tokens plus {ids.shape[1]} prompt/template tokens "
            f"exceeds the task LM's {self.max_positions} positions; shorten the inputs or prompt.")
      n_pad = chunk.cache.valid.shape[0]
      for g in range(0, len(prompts), group):
        take = np.minimum(np.arange(g, g + group), len(prompts) - 1)   # pad by repetition
        rows = (np.tile(ids[take], (n_pad, 1)), np.tile(mask[take], (n_pad, 1)),
                np.tile(last[take], n_pad))
        prefix = SharedPrefix.from_cache(chunk.cache, group=group)
        logits = self._score_fn(self.state, prefix, *sharding.shard(rows, self.mesh),
                                self.verbalizer_ids)
        logits = sharding.to_host(logits).reshape(n_pad, group, -1)[:chunk.num]
        real = min(group, len(prompts) - g)
        out[idx, g:g + real] = logits[:, :real]
    return out


class FullScorer(Scorer):
  """Whole rendered sequences: masked LMs (logits at <mask>) or causal LMs (at the last token).

  By default sequences are packed (`pack_sequences`) into rows of `pack_length` tokens with
  block-diagonal attention and per-segment positions, so no FLOPs go to padding; rows go through
  in calls of `pack_tokens` tokens (the last call's rows rounded up to a power of two), so a run
  compiles a handful of shapes (`self.shapes`). 2048 tokens a call: XLA's buffers for roberta-large
  take 72 MiB (272 MiB at 4096) and the reward is no slower (benchmarks/README.md).
  `pack_length=None`: one padded row per sequence, chunks of `chunk_size` rows padded to their
  longest (the reference path).
  """

  def __init__(self, *args, max_length: int | None = None, pack_length: int | None = 128,
               pack_tokens: int = 2048, truncation_side: str | None = None, **kwargs):
    super().__init__(*args, **kwargs)
    self.max_length = max_length or self.max_positions or 512
    self.masked_lm = self.template.masked_lm
    self.mask_token = self.tokenizer.special_tokens.get("mask_token") if self.masked_lm else None
    if self.masked_lm and (self.mask_token is None or self.tokenizer.token_to_id(
        self.mask_token) is None):
      raise TemplateError("masked-LM template, but the task tokenizer has no mask token.")
    # None: over-long inputs raise; 'right' / 'left': truncated as RLPrompt's tokenizer calls do
    # (`truncation=True`; its evaluator sets truncation_side='left'). ClassificationTask sets it.
    self.truncation_side = truncation_side
    self.pack_length = pack_length
    self.pack_tokens = pack_tokens
    # Counters over this scorer's life: forward calls, their (rows, length) shapes, token slots
    # computed (padding included), real tokens (FLOPs: `self.flops`).
    self.calls, self.slots, self.tokens = 0, 0, 0
    self.shapes: set[tuple[int, int]] = set()

  @functools.cached_property
  def _forward_fn(self):
    graphdef = self.graphdef

    def forward(state, ids, mask, read, verb_ids):
      model = nnx.merge(graphdef, state)
      hidden = model(ids, attention_mask=mask, compute_logits=False).hidden
      h = jnp.take_along_axis(hidden, read[:, None, None], axis=1)[:, 0]
      return verbalizer_logits(model, h, verb_ids)
    return jax.jit(forward)

  def _tokenize(self, texts: list[str]) -> list[list[int]]:
    seqs = self.tokenizer.encode_batch(texts, add_special_tokens=True)
    too_long = max(map(len, seqs))
    if too_long > self.max_length:
      if self.truncation_side is None:
        raise TemplateError(f"an input is {too_long} tokens, longer than the task LM's "
                            f"{self.max_length}; shorten the inputs (or truncate: --truncate).")
      seqs = truncate(seqs, self.max_length, self.truncation_side,
                      *_added_specials(self.tokenizer))
    return seqs

  @functools.cached_property
  def _packed_fn(self):
    graphdef = self.graphdef

    def forward(state, ids, segments, verb_ids):
      # Verbalizer logits at every slot [R, L, C]: the head's few FLOPs per token (< 1% of the
      # encoder's) buy one compiled shape per row shape whatever the number of segments.
      model = nnx.merge(graphdef, state)
      hidden = model(ids, segment_ids=segments, compute_logits=False).hidden
      return verbalizer_logits(model, hidden, verb_ids)
    return jax.jit(forward)

  def _read_positions(self, seqs: list[list[int]]) -> np.ndarray:
    if not self.masked_lm:
      return np.asarray([len(s) - 1 for s in seqs], np.int32)
    mask_id = self.tokenizer.token_to_id(self.mask_token)
    pos = []
    for s in seqs:
      hits = [i for i, t in enumerate(s) if t == mask_id]
      if len(hits) != 1:
        cut = f" after {self.truncation_side} truncation" if len(s) == self.max_length else ""
        raise TemplateError(f"expected one {self.mask_token} in the encoded input{cut}, found "
                            f"{len(hits)}")
      pos.append(hits[0])
    return np.asarray(pos, np.int32)

  def class_logits(self, prompts: list[str], examples: list[Example]) -> np.ndarray:
    texts = [self.template.render(e.text, p, e.text_b, mask_token=self.mask_token or "<mask>")
             for e in examples for p in prompts]
    seqs = self._tokenize(texts)
    read = self._read_positions(seqs)
    logits = (self._padded_logits(seqs, read) if self.pack_length is None
              else self._packed_logits(seqs, read))
    self.tokens += sum(map(len, seqs))
    self.flops += self.flop_counter.sequences([len(s) for s in seqs], causal=not self.masked_lm)
    return logits.reshape(len(examples), len(prompts), -1)

  def _count_call(self, shape: tuple[int, int]):
    self.calls += 1
    self.slots += shape[0] * shape[1]
    self.shapes.add(tuple(shape))

  def _padded_logits(self, seqs: list[list[int]], read: np.ndarray) -> np.ndarray:
    """[S, C] logits at `read`, one padded row per sequence, chunks of `chunk_size` rows."""
    out = []
    for start in range(0, len(seqs), self.chunk_size):
      part = seqs[start:start + self.chunk_size]
      ids, mask = _pad_batch(part, _bucket(max(map(len, part)), 16), self.pad_id)
      rows = [sharding.pad_rows(x, self.chunk_size) for x in (ids, mask, read[start:start + len(part)])]
      rows[1][len(part):, 0] = True
      self._count_call(rows[0].shape)
      logits = self._forward_fn(self.state, *sharding.shard(tuple(rows), self.mesh),
                                self.verbalizer_ids)
      out.append(sharding.to_host(logits)[:len(part)])
    return np.concatenate(out, 0)

  def _packed_logits(self, seqs: list[list[int]], read: np.ndarray) -> np.ndarray:
    """[S, C] logits at `read` from packed rows (see the class doc)."""
    longest = max(map(len, seqs))
    length = max(self.pack_length, _next_power_of_two(longest))
    # Rows no longer than the model's position table (RoBERTa's starts after padding_idx + 1).
    limit = self.max_length - getattr(getattr(self.model, "config", None), "position_offset", 0)
    if length > limit:
      length = max(longest, limit)
    ids, segments, where = pack_sequences(seqs, length, self.pad_id)
    flat_read = where[:, 0] * length + where[:, 1] + read          # slot of each read position
    full = _bucket(max(1, self.pack_tokens // length), self.devices)
    out = np.zeros((len(seqs), len(self.verbalizer_ids)), np.float32)
    for start in range(0, ids.shape[0], full):
      stop = min(start + full, ids.shape[0])
      rows = min(full, _bucket(_next_power_of_two(stop - start), self.devices))
      part = (sharding.pad_rows(ids[start:stop], rows),
              sharding.pad_rows(segments[start:stop], rows))
      self._count_call(part[0].shape)
      logits = self._packed_fn(self.state, *sharding.shard(part, self.mesh), self.verbalizer_ids)
      logits = sharding.to_host(logits).reshape(rows * length, -1)
      mine = (flat_read >= start * length) & (flat_read < stop * length)
      out[mine] = logits[flat_read[mine] - start * length]
    return out


def _next_power_of_two(n: int) -> int:
  return 1 << max(0, n - 1).bit_length()


def pack_sequences(seqs: list[list[int]], length: int,
                   pad_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Packs token sequences into rows of `length` slots (best-fit decreasing).

  Returns (ids [R, length], segment ids [R, length] with 1, 2, ... for the sequences of a row and 0
  for padding, where [S, 2] = (row, first slot) of each sequence). Every sequence must fit a row.
  """
  order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
  rows: list[list[int]] = []
  by_free: list[list[int]] = [[] for _ in range(length + 1)]   # rows by their free slots
  for i in order:
    n = len(seqs[i])
    if n > length:
      raise ValueError(f"a sequence of {n} tokens does not fit in rows of {length}.")
    free = next((f for f in range(n, length + 1) if by_free[f]), None)   # best fit
    if free is None:
      rows.append([])
      row, free = len(rows) - 1, length
    else:
      row = by_free[free].pop()
    rows[row].append(i)
    by_free[free - n].append(row)
  ids = np.full((len(rows), length), pad_id, np.int32)
  segments = np.zeros((len(rows), length), np.int32)
  where = np.zeros((len(seqs), 2), np.int64)
  for r, members in enumerate(rows):
    slot = 0
    for k, i in enumerate(members):
      n = len(seqs[i])
      ids[r, slot:slot + n] = seqs[i]
      segments[r, slot:slot + n] = k + 1
      where[i] = (r, slot)
      slot += n
  return ids, segments, where


def make_scorer(model: nnx.Module, tokenizer: Tokenizer, template: str,
                verbalizers: tuple[str, ...], **kwargs) -> Scorer:
  """CausalScorer when the task LM is causal and the prompt follows the inputs, else FullScorer."""
  causal = isinstance(model, CausalLM)
  tmpl = Template(template, masked_lm=not causal)
  cls = CausalScorer if causal and tmpl.prompt_after_inputs else FullScorer
  return cls(model, tokenizer, tmpl, verbalizers, **kwargs)
