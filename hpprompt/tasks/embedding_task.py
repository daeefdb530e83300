"""Embedding-level task inputs: a template whose {prompt} slot holds L vectors instead of tokens.

Soft prompt tuning ("The Power of Scale for Parameter-Efficient Prompt Tuning", Lester et al. 2021),
InfoPrompt (Wu et al. 2023) and PEZ ("Hard Prompts Made Easy", Wen et al. 2023) all feed a frozen
task LM input embeddings in which the L positions of the template's {prompt} slot are free vectors
P_1..P_L. One code path builds them for every task LM (one example):

  ids = specials_before + enc(head) + [slot] * L + enc(tail) + specials_after
  x   = embed(ids), with x[slot j] = P_j;       right padding + attention mask;

head / tail are the template rendered with the inputs on either side of {prompt}; the whitespace
just before {prompt} belongs to the slot (as in `Template.split_at_prompt`), so the soft prompt
replaces the tokens of ' ' + prompt. Positions come from the models' own logic (count of real
tokens). The class logits are the verbalizer logits (`models.base.verbalizer_logits`) at the last
token (causal LMs) or at <mask> (masked LMs). With P = embed(tokens of ' ' + p) they equal the
string scorers' logits for the hard prompt p (tested). Causal LMs with the inputs before {prompt}:
the inputs cannot see the prompt, so they are encoded once into a KV cache and each step runs only
the prompt and the tail (`SharedPrefix`), like `scoring.CausalScorer`. Otherwise (masked LMs, the
prompt before the inputs) the sequences are packed several to a row (`packing`: block-diagonal
attention, per-segment positions, each with its own prompt slots), so no FLOPs go to padding;
`pack_length=None` gives one padded row per example (the reference layout).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax import struct

from hpprompt.models.base import CausalLM
from hpprompt.models.cache import KVCache
from hpprompt.models.cache import SharedPrefix
from hpprompt.models.tokenizer import Tokenizer
from hpprompt.tasks import packing
from hpprompt.tasks.data import Example
from hpprompt.tasks.scoring import verbalizer_logits
from hpprompt.tasks.templates import MASK
from hpprompt.tasks.templates import Template
from hpprompt.tasks.templates import TemplateError
from hpprompt.tasks.templates import verbalizer_ids
from hpprompt.tasks.vocabulary import allowed_tokens  # noqa: F401  (re-exported)
from hpprompt.tasks.vocabulary import nearest_ids  # noqa: F401
from hpprompt.tasks.vocabulary import round_trip_tokens  # noqa: F401
from hpprompt.training import sharding

Array = jax.Array
_MARK = "\ue000"   # a private-use character standing for {prompt} while rendering


@struct.dataclass
class PromptBatch:
  """Embedding-level inputs of B examples (a pytree; every array has the batch first)."""
  ids: Array                         # [B, T] token ids; the prompt slots hold the pad id
  mask: Array                        # [B, T] bool attention mask (right padding)
  slot: Array                        # [B, T] int32: j at the j-th prompt slot, -1 elsewhere
  read: Array                        # [B] int32: the position whose logits are read
  labels: Array                      # [B] int32
  prefix: KVCache | None = None      # the inputs' cache (causal LMs); ids.. then continue them
  null_ids: Array | None = None      # [B, T0] the template without prompt (InfoPrompt's null batch)
  null_mask: Array | None = None     # [B, T0]
  null_hidden: Array | None = None   # [B, D] null pass: hidden state at its read position
  null_summary: Array | None = None  # [B, D] null pass: position 0 (masked LMs) / read (causal LMs)
  segments: Array | None = None      # packed layout (`packing`): [R, W] segment ids; then ids,
  example: Array | None = None       # mask, slot are [R, W], example [R, W], read flat in R x W

  @property
  def size(self) -> int:
    return self.read.shape[0]


def insert_prompt(x: Array, prompt: Array, slot: Array, example: Array | None = None) -> Array:
  """x [B, T, D] with x[b, t] = prompt[slot[b, t]] where slot >= 0; prompt [L, D] or [B, L, D]
  (row b's, or with `example` [B, T] of a packed batch, example[b, t]'s prompt)."""
  length = prompt.shape[-2]
  if length == 0:
    return x
  idx = jnp.clip(slot, 0, length - 1)
  if prompt.ndim == 2:
    rows = prompt[idx]                                                      # [B, T, D]
  elif example is not None:
    rows = prompt[example, idx]
  else:
    rows = jnp.take_along_axis(prompt, idx[..., None], axis=1)
  return jnp.where((slot >= 0)[..., None], rows.astype(x.dtype), x)


def prompt_embeddings(model: nnx.Module, prompt: Array, batch: PromptBatch) -> Array:
  """The LM's input embeddings [B, T, D] with the prompt in its slots."""
  return insert_prompt(model.embed(batch.ids), prompt, batch.slot, batch.example)


def read_hidden(model: nnx.Module, prompt: Array, batch: PromptBatch) -> Array:
  """Final hidden state [B, D] at each row's read position (last token or <mask>)."""
  x = prompt_embeddings(model, prompt, batch)
  if batch.segments is not None:
    hidden = model(inputs_embeds=x, segment_ids=batch.segments, compute_logits=False).hidden
    return hidden.reshape(-1, hidden.shape[-1])[batch.read]
  if batch.prefix is None:
    out = model(inputs_embeds=x, attention_mask=batch.mask, compute_logits=False)
  else:
    out = model(inputs_embeds=x, attention_mask=batch.mask, compute_logits=False,
                cache=SharedPrefix.from_cache(batch.prefix, group=1))
  return jnp.take_along_axis(out.hidden, batch.read[:, None, None], axis=1)[:, 0]


def class_logits(model: nnx.Module, prompt: Array, batch: PromptBatch, ids: Array) -> Array:
  """Verbalizer logits [B, C] (float32) of the task LM with the prompt in its slot."""
  return verbalizer_logits(model, read_hidden(model, prompt, batch), ids).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _logits(state, prompt, batch, ids, *, graphdef):
  return class_logits(nnx.merge(graphdef, state), prompt, batch, ids)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _encode_prefix(state, ids, mask, *, graphdef):
  model = nnx.merge(graphdef, state)
  cache = model.init_cache(ids.shape[0], ids.shape[1])
  return model(ids, attention_mask=mask, cache=cache, compute_logits=False).cache


@functools.partial(jax.jit, static_argnames=("graphdef", "causal"))
def _null_pass(state, ids, mask, read, *, graphdef, causal):
  """Prompt-free pass: hidden at the read position, and the generator's summary state."""
  hidden = nnx.merge(graphdef, state)(ids, attention_mask=mask, compute_logits=False).hidden
  at_read = jnp.take_along_axis(hidden, read[:, None, None], axis=1)[:, 0]
  return at_read, (at_read if causal else hidden[:, 0])


@functools.partial(jax.jit, static_argnames=("graphdef", "causal"))
def _null_pass_packed(state, ids, segments, read, first, *, graphdef, causal):
  """`_null_pass` over packed rows (`packing`): read / first are flat slot indices [B]."""
  hidden = nnx.merge(graphdef, state)(ids, segment_ids=segments, compute_logits=False).hidden
  hidden = hidden.reshape(-1, hidden.shape[-1])
  return hidden[read], hidden[read if causal else first]


@functools.partial(jax.jit, static_argnames=("graphdef", "vocab"))
def _vocab_embeddings(state, *, graphdef, vocab):
  return nnx.merge(graphdef, state).embed(jnp.arange(vocab)[None])[0]


def take(batch: PromptBatch, rows) -> PromptBatch:
  """Examples `rows` of a batch (a minibatch of the training set); packed batches are re-packed
  on the host (rows of the same length, their number bucketed: `packing.row_bucket`)."""
  rows = jnp.asarray(rows)
  pick = lambda x: None if x is None else x[rows]
  nulls = {f: pick(getattr(batch, f)) for f in ("null_ids", "null_mask", "null_hidden",
                                                 "null_summary")}
  if batch.segments is not None:
    devices = len(batch.ids.sharding.device_set) if isinstance(batch.ids, jax.Array) else 1
    arrays = packing.take({f: getattr(batch, f) for f in ("ids", "segments", "slot", "read")},
                          np.asarray(rows), 0, devices=devices)
    return PromptBatch(*(arrays[k] for k in ("ids", "mask", "slot", "read")), pick(batch.labels),
                       segments=arrays["segments"], example=arrays["example"], **nulls)
  prefix = None if batch.prefix is None else batch.prefix.take(rows)
  return PromptBatch(*(pick(getattr(batch, f)) for f in ("ids", "mask", "slot", "read", "labels")),
                     prefix=prefix, **nulls)


def _wrap(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
  """Special tokens the tokenizer adds before / after a text (e.g. <s> ... </s>)."""
  plain = tokenizer.encode("a")
  full = tokenizer.encode("a", add_special_tokens=True)
  for i in range(len(full) - len(plain) + 1):
    if full[i:i + len(plain)] == plain:
      return full[:i], full[i + len(plain):]
  raise TemplateError("cannot tell the tokenizer's special tokens from its text tokens.")


class EmbeddingTask:
  """A frozen task LM + template + verbalizers, fed embedding-level prompts.

  Args:
    model: frozen task LM (`CausalLM` or `MaskedLM`).
    tokenizer: its tokenizer.
    template: `Template` or template text ({sentence_1}, {prompt}, <mask> for masked LMs).
    verbalizers: one single-token word per class.
    mesh: devices for the batch (default: all).
    cache_inputs: encode the inputs once when they precede {prompt} in a causal LM.
    bucket: sequence lengths are padded to a multiple of it (fewer recompilations).
    max_length: longest input accepted (also capped by the model's position table).
    pack_length: slots per packed row for uncached sequences (`packing`); None: padded rows.
  """

  def __init__(self, model: nnx.Module, tokenizer: Tokenizer, template: Template | str,
               verbalizers: tuple[str, ...], *, mesh: jax.sharding.Mesh | None = None,
               cache_inputs: bool = True, bucket: int = 8, max_length: int = 512,
               pack_length: int | None = 128):
    self.model, self.tokenizer = model, tokenizer
    self.causal = isinstance(model, CausalLM)
    if isinstance(template, str):
      template = Template(template, masked_lm=not self.causal)
    if template.masked_lm == self.causal:
      raise TemplateError(f"template {template.text!r} does not suit a "
                          f"{'causal' if self.causal else 'masked'} task LM.")
    self.template, self.verbalizers = template, tuple(verbalizers)
    self.verbalizer_ids = jnp.asarray(verbalizer_ids(tokenizer, self.verbalizers))
    self.mesh = mesh or sharding.make_mesh()
    self.graphdef, state = nnx.split(model)
    self.state = sharding.replicate(state, self.mesh)
    self.pad_id = tokenizer.special_id("pad") or 0
    self.before, self.after = _wrap(tokenizer)
    self.mask_token = self.mask_id = None
    if not self.causal:
      self.mask_token = tokenizer.special_tokens.get("mask_token")
      self.mask_id = None if self.mask_token is None else tokenizer.token_to_id(self.mask_token)
      if self.mask_id is None:
        raise TemplateError("masked-LM template, but the task tokenizer has no mask token.")
    head = template.text.split("{prompt}", 1)[0]
    self.slot_space = head[len(head.rstrip()):]
    self.cached = (cache_inputs and self.causal and template.prompt_after_inputs
                   and not self.after)
    config = getattr(model, "config", None)
    limit = getattr(config, "max_positions", None)
    if limit is not None:   # learned / rotary position tables (RoBERTa's start after an offset)
      max_length = min(max_length, limit - getattr(config, "position_offset", 0))
    self.bucket, self.max_length, self.pack_length = bucket, max_length, pack_length
    self.dim = jax.eval_shape(model.embed, jnp.zeros((1, 1), jnp.int32)).shape[-1]

  # ---- vocabulary and hard prompts ---------------------------------------------------------------

  @functools.cached_property
  def embeddings(self) -> Array:
    """Input-embedding rows [V, D] of the tokenizer's tokens (OPT's table has padding rows)."""
    table = getattr(self.model, "output_embedding", None)
    vocab = self.tokenizer.vocab_size if table is None else min(self.tokenizer.vocab_size,
                                                                 table().shape[0])
    return _vocab_embeddings(self.state, graphdef=self.graphdef, vocab=int(vocab))

  def hard_prompt_ids(self, prompt: str) -> np.ndarray:
    """Token ids that a hard prompt string occupies in the slot (with the slot's whitespace)."""
    return np.asarray(self.tokenizer.encode(self.slot_space + prompt), np.int32)

  def prompt_text(self, ids) -> tuple[str, bool]:
    """(string for `Template.render`, whether it re-encodes to exactly `ids`) of slot token ids."""
    text = self.tokenizer.decode(ids)
    if self.slot_space and text.startswith(self.slot_space):
      text = text[len(self.slot_space):]
    return text, [int(i) for i in self.hard_prompt_ids(text)] == [int(i) for i in ids]

  # ---- encoding ----------------------------------------------------------------------------------

  def _parts(self, example: Example) -> tuple[list[int], list[int]]:
    text = self.template.render(example.text, _MARK, example.text_b,
                                mask_token=self.mask_token or MASK)
    head, tail = text.split(_MARK)
    head = head[:len(head) - len(self.slot_space)]
    enc = lambda s: self.tokenizer.encode(s) if s else []
    return enc(head), enc(tail)

  def _read(self, seq: list[int]) -> int:
    if self.causal:
      return len(seq) - 1
    hits = [i for i, t in enumerate(seq) if t == self.mask_id]
    if len(hits) != 1:
      raise TemplateError(f"expected one {self.mask_token} in the encoded input, found "
                          f"{len(hits)}.")
    return hits[0]

  def _sequences(self, examples: list[Example], length: int, cached: bool):
    """Per example: (prefix ids, continuation ids, slot start in the continuation)."""
    out = []
    for e in examples:
      head, tail = self._parts(e)
      pre = self.before + head
      cont = [self.pad_id] * length + tail + self.after
      if len(pre) + len(cont) > self.max_length:
        raise TemplateError(f"an input is {len(pre) + len(cont)} tokens, longer than the task LM's "
                            f"{self.max_length}; shorten the inputs.")
      out.append((pre, cont, 0) if cached else ([], pre + cont, len(pre)))
    return out

  def _arrays(self, examples: list[Example], length: int, cached: bool, pack: bool,
              padded_rows: int | None = None) -> dict:
    seqs = self._sequences(examples, length, cached)
    conts = [c for _, c, _ in seqs]
    if not max(map(len, conts)):
      raise TemplateError("the prompt and the template tail are empty: nothing to read logits at.")
    padded_length = packing.round_up(max(map(len, conts)), self.bucket)
    width = pack and packing.choose_width(
        list(map(len, conts)), self.pack_length, padded_length,
        self.dim, self.max_length, self.mesh.devices.size, padded_rows)
    if width:   # packed, unless one padded row per example computes fewer slots
      out = packing.pack(conts, [s for _, _, s in seqs], [self._read(c) for c in conts], length,
                         width, self.pad_id, devices=self.mesh.devices.size)
      return {**out, "labels": np.asarray([e.label for e in examples], np.int32)}
    t = packing.round_up(max(map(len, conts)), 1 if cached else self.bucket)
    slot = np.full((len(seqs), t), -1, np.int32)
    for i, (_, _, start) in enumerate(seqs):
      slot[i, start:start + length] = np.arange(length)
    out = {"ids": packing.pad_rows(conts, t, self.pad_id),
           "mask": packing.pad_rows([[1] * len(c) for c in conts], t, 0) > 0, "slot": slot,
           "read": np.asarray([self._read(c) for c in conts], np.int32),
           "labels": np.asarray([e.label for e in examples], np.int32)}
    if cached:
      pres = [p for p, _, _ in seqs]
      s = packing.round_up(max(map(len, pres)), self.bucket)
      out["prefix_ids"] = packing.pad_rows(pres, s, self.pad_id)
      out["prefix_mask"] = packing.pad_rows([[1] * len(p) for p in pres], s, 0) > 0
    return out

  def encode(self, examples: list[Example], length: int, *, null: bool = False,
             rows: int | None = None) -> PromptBatch:
    """Device batch of `examples` for a prompt of `length` vectors.

    Args:
      examples: the examples (at least one).
      length: prompt vectors L.
      null: also the prompt-free pass InfoPrompt needs (null ids/mask and hidden states).
      rows: pad to this many rows by repeating the first example (fixed shapes for evaluation).
    """
    real = len(examples)
    examples = list(examples) + [examples[0]] * ((rows or real) - real)
    pack = self.pack_length is not None
    packed = pack and not self.cached
    # Packed: only the real examples take slots; the padding examples read example 0's logits.
    fill = lambda x: np.concatenate([x, np.repeat(x[:1], len(examples) - real, 0)])
    arrays = self._arrays(examples[:real], length, False, True, len(examples)) if packed else {}
    if "segments" in arrays:
      arrays.update(read=fill(arrays["read"]), labels=fill(arrays["labels"]))
    else:
      arrays = self._arrays(examples, length, self.cached, False)
    batch = PromptBatch(*(arrays[k] for k in ("ids", "mask", "slot", "read", "labels")),
                        segments=arrays.get("segments"), example=arrays.get("example"))
    batch = self.place(batch)
    if self.cached:
      ids, mask = self.place((arrays["prefix_ids"], arrays["prefix_mask"]))
      cache = _encode_prefix(self.state, ids, mask, graphdef=self.graphdef)
      batch = batch.replace(prefix=self._place_cache(cache))
    if null:   # padded null ids / mask: the head loss's negatives (token embeddings only)
      zero = self._arrays(examples, 0, False, False)
      ids, mask, read = self.place((zero["ids"], zero["mask"], zero["read"]))
      packed = self._arrays(examples[:real], 0, False, True, len(examples)) if pack else {}
      if "segments" in packed:
        zero = packed
        rows_, where = self.place(((zero["ids"], zero["segments"]),
                                   (fill(zero["read"]), fill(zero["first"]))))
        hidden, summary = _null_pass_packed(self.state, *rows_, *where, graphdef=self.graphdef,
                                            causal=self.causal)
      else:
        hidden, summary = _null_pass(self.state, ids, mask, read, graphdef=self.graphdef,
                                     causal=self.causal)
      batch = batch.replace(null_ids=ids, null_mask=mask, null_hidden=hidden, null_summary=summary)
    return batch

  def batches(self, examples: list[Example], length: int, *, null: bool = False,
              chunk_size: int = 128):
    """Yields (indices into `examples`, batch) in chunks of similar length (for evaluation)."""
    chunk = packing.round_up(chunk_size, self.mesh.devices.size)
    sizes = [len(s) for s in self.tokenizer.encode_batch([e.text + (e.text_b or "")
                                                          for e in examples])]
    order = np.argsort(sizes, kind="stable")
    for start in range(0, len(order), chunk):
      idx = order[start:start + chunk]
      yield idx, self.encode([examples[i] for i in idx], length, null=null, rows=chunk)

  def predict(self, logits_fn, examples: list[Example], length: int, *, null: bool = False,
              chunk_size: int = 128, progress=None) -> np.ndarray:
    """Class logits [N, C] of `examples` from `logits_fn(batch) -> [B, C]`, chunk by chunk;
    `progress(done, total)` is called after each chunk."""
    out = np.zeros((len(examples), len(self.verbalizers)), np.float32)
    done = 0
    for idx, batch in self.batches(examples, length, null=null, chunk_size=chunk_size):
      out[idx] = sharding.to_host(logits_fn(batch))[:len(idx)]
      done += len(idx)
      if progress is not None:
        progress(done, len(examples))
    return out

  # ---- placement ---------------------------------------------------------------------------------

  def place(self, tree):
    """Shards batch-first arrays over the mesh (replicates when B is not a multiple of devices)."""
    leaves = jax.tree.leaves(tree)
    if leaves and all(np.shape(x)[0] % self.mesh.devices.size == 0 for x in leaves):
      return sharding.shard(tree, self.mesh)
    return sharding.replicate(jax.tree.map(jnp.asarray, tree), self.mesh)

  def _place_cache(self, cache: KVCache) -> KVCache:
    rows = self.place(cache.replace(index=None))            # per-layer [B, S, heads, dim] arrays
    return rows.replace(index=sharding.replicate(cache.index, self.mesh))

  def place_batch(self, batch: PromptBatch) -> PromptBatch:
    """Re-places a batch (e.g. after `take`); the cache's scalar write index is replicated."""
    prefix = batch.prefix
    batch = self.place(batch.replace(prefix=None))
    return batch if prefix is None else batch.replace(prefix=self._place_cache(prefix))

  def logits(self, prompt: Array, batch: PromptBatch) -> Array:
    """Verbalizer logits [B, C] with `prompt` ([L, D] or [B, L, D]) in the slot (jitted)."""
    return _logits(self.state, prompt, batch, self.verbalizer_ids, graphdef=self.graphdef)
