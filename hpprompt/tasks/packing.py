"""Packed embedding-level batches: several [prompt + example] sequences per row, no padding waste.

The padded layout (`embedding_task.PromptBatch` with `segments=None`) runs every example on its own
row of the batch's longest length. The packed layout puts the sequences one after another into rows
of W slots (best-fit decreasing, `scoring.pack_sequences`), with block-diagonal attention and
per-segment positions (`segment_ids` of the models), so each sequence, with its own soft-prompt
slots, gives the logits it gives alone (tested within 1e-5, and so do the loss and its gradient
w.r.t. the prompt). Arrays of a packed batch:

  ids, segments, slot, example  [R, W]  token ids; 1, 2, ... per sequence of a row, 0 = padding;
                                        j at the j-th prompt slot (-1 elsewhere); the example each
                                        slot belongs to (per-example prompts, 0 on padding);
  read                          [B]     flat index row * W + slot of each example's read position
                                        (`first`: of its first token, for InfoPrompt's null pass).

Shapes stay few: W = max(pack_length, next power of two of the longest sequence) and R is rounded
up to 2^k or 3 x 2^(k-1) (`row_bucket`: at most a third of the rows padding; a multiple of the
devices), so a run compiles about 2 log2(R) shapes at most; minibatches of one size take 1-2.
"""
import numpy as np

from hpprompt.tasks.scoring import pack_sequences


def pad_rows(seqs: list[list[int]], length: int, value: int) -> np.ndarray:
  """[len(seqs), length] int32: each sequence left-aligned, the rest `value`."""
  out = np.full((len(seqs), length), value, np.int32)
  for i, s in enumerate(seqs):
    out[i, :len(s)] = s
  return out


def round_up(n: int, step: int) -> int:
  """n rounded up to a multiple of step (at least step)."""
  return max(step, -(-n // step) * step)


def next_power_of_two(n: int) -> int:
  return 1 << max(0, n - 1).bit_length()


def row_bucket(n: int, devices: int = 1) -> int:
  """The smallest 2^k or 3 x 2^(k-1) >= n, rounded up to a multiple of `devices`."""
  n = max(1, n)
  power = next_power_of_two(n)
  rows = power * 3 // 4 if power >= 4 and power * 3 // 4 >= n else power
  return -(-rows // devices) * devices


def row_length(longest: int, pack_length: int, limit: int | None = None) -> int:
  """Slots per packed row: pack_length, or the next power of two that holds the longest."""
  length = max(pack_length, next_power_of_two(longest))
  if limit is not None and length > limit:
    length = max(longest, limit)
  return length


def choose_width(lengths: list[int], pack_length: int, padded_length: int, dim: int,
                 limit: int | None = None, devices: int = 1,
                 padded_rows: int | None = None) -> int | None:
  """Row length W in {1, 2, 4} x pack_length (at least the longest sequence) of the cheapest
  packed layout, or None when one row of `padded_length` per sequence is cheaper (sequences of
  nearly equal length gain nothing from packing, and rows round up). `padded_rows`: rows of the
  padded layout (default one per sequence; more when an evaluation chunk is filled up).

  Cost of R rows of W slots: R W (1 + W / (6 dim)), the dense layers' ~24 dim^2 FLOPs per slot
  plus attention's ~4 dim per slot and key of its row (a longer row attends over more keys).
  """
  cost = lambda rows, width: rows * width * (1 + width / (6 * dim))
  longest = max(lengths)
  best, best_cost = None, cost(padded_rows or len(lengths), padded_length)
  for width in sorted({row_length(longest, pack_length * m, limit) for m in (1, 2, 4)}):
    rows = pack_sequences([[0] * n for n in lengths], width)[0].shape[0]
    if cost(row_bucket(rows, devices), width) < best_cost:
      best, best_cost = width, cost(row_bucket(rows, devices), width)
  return best


def pack(seqs: list[list[int]], starts: list[int], reads: list[int], prompt_length: int,
         length: int, pad_id: int, *, devices: int = 1) -> dict:
  """Host arrays of a packed batch (see the module doc).

  Args:
    seqs: token ids of each example's sequence, prompt slots included (any id there).
    starts: first prompt slot of each sequence.
    reads: position of each sequence whose logits are read.
    prompt_length: prompt slots L per sequence (0: none, e.g. InfoPrompt's null pass).
    length: slots per row W.
    pad_id: id of the padding slots.
    devices: rows are a multiple of it.
  """
  ids, segments, where = pack_sequences(seqs, length, pad_id)
  rows = row_bucket(ids.shape[0], devices)
  ids = np.pad(ids, ((0, rows - ids.shape[0]), (0, 0)), constant_values=pad_id)
  segments = np.pad(segments, ((0, rows - segments.shape[0]), (0, 0)))
  slot = np.full(ids.shape, -1, np.int32)
  example = np.zeros(ids.shape, np.int32)
  for i, (n, (r, c)) in enumerate(zip(map(len, seqs), where)):
    first = c + starts[i]
    slot[r, first:first + prompt_length] = np.arange(prompt_length)
    example[r, c:c + n] = i
  first = (where[:, 0] * length + where[:, 1]).astype(np.int32)
  read = (first + np.asarray(reads, np.int32)).astype(np.int32)
  return {"ids": ids, "segments": segments, "slot": slot, "example": example, "read": read,
          "first": first, "mask": segments > 0}


def unpack(ids, segments, slot, read) -> tuple[list[list[int]], list[int], list[int], int]:
  """(sequences, prompt starts, read positions, prompt length) of a packed batch's examples."""
  ids, segments, slot, read = map(np.asarray, (ids, segments, slot, read))
  length = ids.shape[1]
  prompt_length = int(slot.max()) + 1
  seqs, starts, reads = [], [], []
  for flat in read:
    r, c = divmod(int(flat), length)
    cols = np.flatnonzero(segments[r] == segments[r, c])
    first = int(cols[0])
    seqs.append(ids[r, cols].tolist())
    prompt = np.flatnonzero(slot[r, cols] == 0)
    starts.append(int(prompt[0]) if prompt_length and len(prompt) else 0)
    reads.append(c - first)
  return seqs, starts, reads, prompt_length


def take(arrays: dict, rows, pad_id: int, *, devices: int = 1) -> dict:
  """Host arrays of a packed batch holding the examples `rows` of another (re-packed)."""
  seqs, starts, reads, prompt_length = unpack(arrays["ids"], arrays["segments"], arrays["slot"],
                                              arrays["read"])
  rows = [int(i) for i in np.asarray(rows)]
  return pack([seqs[i] for i in rows], [starts[i] for i in rows], [reads[i] for i in rows],
              prompt_length, np.asarray(arrays["ids"]).shape[1], pad_id, devices=devices)
