"""Text style transfer data: Yelp sentiment and Shakespeare, both directions (bundled, see
hpprompt/data/style_transfer/README.md).

Direction '0to1' rewrites label-0 sentences into label 1 (Yelp: negative -> positive; Shakespeare:
original -> modern). Yelp outputs are lower-cased (RLPrompt `lower_outputs`), Shakespeare's are not.
"""
import csv
import dataclasses
import os

from hpprompt.tasks.data import DataError

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "style_transfer")
TASKS = ("yelp", "shakespeare")
DIRECTIONS = {"0to1": (0, 1), "1to0": (1, 0)}
SHAKESPEARE_SEEDS = {0: "100-100", 1: "100-13", 2: "100-21"}   # RLPrompt tst_data_utils.py


@dataclasses.dataclass(frozen=True)
class StyleData:
  train: list[str]           # source-style sentences to train on
  dev: list[str]             # validation sources
  test: list[str]            # evaluation inputs
  references: list[str]      # aligned with test
  source_label: int
  target_label: int
  lower: bool                # lower-case the outputs


def read_lines(path: str, what: str = "file", *, sentences: bool = False) -> list[str]:
  """Lines of a UTF-8 text file without the trailing newline; DataError naming the file (and the
  line: bytes that are not UTF-8, a NUL byte; with `sentences`, one sentence per line: no tab)."""
  if not os.path.isfile(path):
    raise DataError(f"{what} {path!r} does not exist.")
  with open(path, "rb") as f:
    raw = f.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
  if len(raw) > 1 and raw[-1] == b"":
    raw.pop()
  lines = []
  for number, line in enumerate(raw, 1):
    try:
      text = line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(f"{path}:{number}: not UTF-8 text (byte 0x{line[e.start]:02x} at column "
                      f"{e.start + 1}).") from None
    if "\0" in text:
      raise DataError(f"{path}:{number}: holds a NUL byte (column {text.index(chr(0)) + 1}); "
                      "expected plain text.")
    if sentences and "\t" in text:
      raise DataError(f"{path}:{number}: holds a tab; expected one sentence per line, not a "
                      "TSV with columns.")
    lines.append(text)
  if not any(line.strip() for line in lines):
    raise DataError(f"{what} {path!r} is empty.")
  return lines


def _tsv(path: str) -> list[tuple[str, int]]:
  if not os.path.isfile(path):
    raise DataError(f"{path!r} does not exist.")
  with open(path, encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f, delimiter="\t"))
  if not rows or rows[0] != ["text", "label"]:
    raise DataError(f"{path!r}: expected a 'text<TAB>label' header.")
  return [(r[0], int(r[1])) for r in rows[1:]]


def load(task: str, direction: str, *, dataset_seed: int = 0, train_file: str | None = None,
         root: str = ROOT) -> StyleData:
  """The direction's sentences; `train_file` (one sentence per line) replaces the training pool."""
  if task not in TASKS:
    raise DataError(f"unknown task {task!r}; choose one of {TASKS}.")
  if direction not in DIRECTIONS:
    raise DataError(f"unknown direction {direction!r}; choose one of {sorted(DIRECTIONS)}.")
  src, tgt = DIRECTIONS[direction]
  if task == "yelp":
    path = lambda name: os.path.join(root, "yelp", f"{name}.{src}.txt")
    data = StyleData(read_lines(path("train")), read_lines(path("dev")), read_lines(path("test")),
                     read_lines(path("ref")), src, tgt, lower=True)
  else:
    if dataset_seed not in SHAKESPEARE_SEEDS:
      raise DataError(f"dataset_seed must be one of {sorted(SHAKESPEARE_SEEDS)} for shakespeare.")
    folder = os.path.join(root, "shakespeare", SHAKESPEARE_SEEDS[dataset_seed])
    split = {s: _tsv(os.path.join(folder, f"{s}.tsv")) for s in ("train", "dev", "test")}
    pick = lambda rows, label: [t for t, y in rows if y == label]
    data = StyleData(pick(split["train"], src), pick(split["dev"], src),
                     pick(split["test"], src), pick(split["test"], tgt), src, tgt, lower=False)
  if train_file:
    data = dataclasses.replace(data, train=[s for s in read_lines(train_file, "train_file",
                                                                   sentences=True)
                                            if s.strip()])
  return data


def classifier_pool(task: str, per_style: int, *, dataset_seed: int = 0,
                    root: str = ROOT) -> tuple[list[str], list[int]]:
  """(texts, labels): the first `per_style` training sentences of each style (label 0, then 1),
  the training pool of a style classifier (never the test inputs)."""
  texts, labels = [], []
  for direction, label in (("0to1", 0), ("1to0", 1)):
    d = load(task, direction, dataset_seed=dataset_seed, root=root)
    texts += d.train[:per_style]
    labels += [label] * len(d.train[:per_style])
  return texts, labels


def rlprompt_outputs(direction: str, root: str = ROOT) -> str:
  """Path of RLPrompt's released Yelp outputs for a direction (bundled)."""
  return os.path.join(root, "yelp", "rlprompt_outputs", f"{direction}.txt")
