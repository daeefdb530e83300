"""Your own classification data: CSV / TSV / JSONL files, or a tensorflow-datasets set.

`--dataset=PATH` is a folder with `train.*`, `dev.*` (or `validation.*`) and optionally `test.*`
files, or one file; `.csv`, `.tsv` or `.jsonl`, with a header (CSV/TSV) or keys (JSONL) `text`
(`sentence` also accepted), `text_b` for sentence pairs, and `label` (class names or integers);
`--text_key=a[,b]` / `--label_key` rename them. `--dataset=tfds:NAME[/CONFIG]` reads a
tensorflow-datasets set through `tfds.data_source` (its splits train / validation / test; the class
names of a ClassLabel feature).

Classes: `--classes` (label order), else the label feature's names (tfds), else the training
labels: integers 0..max, or the sorted names. A label outside the classes is an error with its
`file:row`. Verbalizers default to the class names with a leading space.

`--shots=K` follows LM-BFF's k-shot protocol (Gao et al. 2021, `tools/generate_k_shot_data.py`,
whose 16-shot splits RLPrompt and PIN use): the training pool is shuffled with the seed
(`--dataset_seed`), grouped by label in shuffled order, and each class gives its first K examples to
train and its next K to dev (disjoint). The test split is the test file, else the dev file (LM-BFF
tests on the original dev set), else the rest of the pool. Without `--shots` the files are used as
they are (a dev file is then needed).
"""
import collections
import csv
import dataclasses
import io
import json
import os
import sys

import numpy as np

from hpprompt.tasks import data
from hpprompt.tasks.data import DataError
from hpprompt.tasks.data import DatasetSpec
from hpprompt.tasks.data import Example

FORMATS = (".csv", ".tsv", ".jsonl")
FILE_SPLITS = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}
TFDS = "tfds:"
_PAIR_MLM = "{sentence_1} {prompt} ? <mask> , {sentence_2}"
_PAIR_CAUSAL = "{sentence_1} ? {sentence_2} {prompt}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataFields:
  """The user-data settings of every classification launcher's config (field names = flags)."""
  classes: tuple[str, ...] | None = None    # class names in label order (default: from the data)
  shots: int | None = None                  # K per class drawn for train and for dev
  text_key: str | None = None               # 'text' (or 'sentence'); 'a,b' for sentence pairs
  label_key: str | None = None              # 'label'


def fields(cfg) -> dict:
  """The DataFields values of a config (to pass them on to another launcher's config)."""
  return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(DataFields)}


class UserDataError(DataError):
  """A bad user data set or setting; `flag` names the setting (None: --dataset, the data)."""

  def __init__(self, message: str, flag: str | None = None):
    super().__init__(message)
    self.flag = flag


def is_user(dataset: str) -> bool:
  """True for tfds:NAME and for a path (anything that is not a bundled name and looks like one)."""
  if dataset.startswith(TFDS):
    return True
  return dataset not in data.DATASETS and (
      os.path.exists(dataset) or os.sep in dataset or dataset.endswith(FORMATS))


def short_name(dataset: str) -> str:
  """A folder-safe name: the file or folder name without extension; tfds:a/b -> tfds_a_b."""
  if not is_user(dataset):
    return dataset
  if dataset.startswith(TFDS):
    return "tfds_" + dataset[len(TFDS):].replace("/", "_")
  base = os.path.basename(os.path.normpath(dataset))
  return os.path.splitext(base)[0] if base.endswith(FORMATS) else base


@dataclasses.dataclass(frozen=True)
class _Row:
  where: str               # 'file:row' for messages
  text: str
  text_b: str | None
  label: str | int         # a file's label text, or a tfds ClassLabel index


# ---- reading ---------------------------------------------------------------------------------

def _keys(text_key: str | None, label_key: str | None, names) -> tuple[str, str | None, str]:
  """(text column, pair column or None, label column) given the available column names."""
  if text_key:
    parts = [p.strip() for p in text_key.split(",")]
    if len(parts) > 2 or not all(parts):
      raise UserDataError(f"give one column, or two for sentence pairs ('a,b'), got {text_key!r}.",
                          "text_key")
    text, pair = parts[0], (parts[1] if len(parts) == 2 else None)
  else:
    text = "sentence" if "text" not in names and "sentence" in names else "text"
    pair = "text_b" if "text_b" in names else None
  return text, pair, label_key or "label"


def _missing(where: str, key: str, names, flag: str) -> UserDataError:
  return UserDataError(f"{where}: no column {key!r} (columns: {sorted(names)}); name it with "
                       f"--{flag}.")


def _row(where, record: dict, text, pair, label) -> _Row:
  value = record.get(label)
  value = value if isinstance(value, int) else "" if value is None else str(value).strip()
  if value == "":
    raise UserDataError(f"{where}: missing label.")
  if not str(record.get(text) or "").strip():
    raise UserDataError(f"{where}: empty text.")
  return _Row(where, str(record[text]), None if pair is None else str(record[pair]), value)


def _read_delimited(path: str, delimiter: str, text_key, label_key) -> list[_Row]:
  content = data.read_utf8(path, "CSV" if delimiter == "," else "TSV")
  reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
  try:
    header = next(reader, None)
    if header is None:
      raise UserDataError(f"{path}: empty file (no header).")
    text, pair, label = _keys(text_key, label_key, header)
    for key, flag in ((text, "text_key"), (pair, "text_key"), (label, "label_key")):
      if key is not None and key not in header:
        raise _missing(f"{path}:1", key, header, flag)
    rows = []
    for cells in reader:
      where = f"{path}:{reader.line_num}"
      if not cells:
        continue
      if len(cells) != len(header):
        raise UserDataError(f"{where}: expected {len(header)} fields, got {len(cells)}.")
      rows.append(_row(where, dict(zip(header, cells)), text, pair, label))
  except csv.Error as e:
    kind = "CSV" if delimiter == "," else "TSV"
    raise UserDataError(f"{path}:{reader.line_num}: malformed {kind} ({e}).") from None
  return rows


def _read_jsonl(path: str, text_key, label_key) -> list[_Row]:
  rows = []
  for n, line in enumerate(data.read_utf8(path, "JSONL").splitlines(), start=1):
    if not line.strip():
      continue
    where = f"{path}:{n}"
    try:
      record = json.loads(line)
    except ValueError as e:
      raise UserDataError(f"{where}: not a JSON object ({e}).") from None
    if not isinstance(record, dict):
      raise UserDataError(f"{where}: not a JSON object.")
    text, pair, label = _keys(text_key, label_key, record)
    for key, flag in ((text, "text_key"), (pair, "text_key"), (label, "label_key")):
      if key is not None and key not in record:
        raise _missing(where, key, record, flag)
    rows.append(_row(where, record, text, pair, label))
  return rows


def read_file(path: str, text_key=None, label_key=None) -> list[_Row]:
  """The rows of one CSV / TSV / JSONL file (format by extension)."""
  ext = os.path.splitext(path)[1].lower()
  if ext == ".jsonl":
    rows = _read_jsonl(path, text_key, label_key)
  elif ext in (".csv", ".tsv"):
    rows = _read_delimited(path, "," if ext == ".csv" else "\t", text_key, label_key)
  else:
    raise UserDataError(f"{path}: unknown format {ext or '(no extension)'!r}; use .csv, .tsv or "
                        ".jsonl.")
  if not rows:
    raise UserDataError(f"{path}: no examples (an empty split).")
  return rows


def _split_files(folder: str) -> dict:
  """{split: path} of the train / dev / test files in a folder."""
  found = {}
  for split, names in FILE_SPLITS.items():
    paths = [os.path.join(folder, n + e) for n in names for e in FORMATS
             if os.path.isfile(os.path.join(folder, n + e))]
    if len(paths) > 1:
      raise UserDataError(f"{folder}: several {split} files {[os.path.basename(p) for p in paths]}"
                          "; keep one.")
    if paths:
      found[split] = paths[0]
  if "train" not in found:
    raise UserDataError(f"{folder}: no train.csv, train.tsv or train.jsonl.")
  return found


def _file_rows(source: str, cfg) -> tuple[dict, tuple | None]:
  if not os.path.exists(source):
    raise UserDataError(f"{source}: no such file or folder.")
  files = _split_files(source) if os.path.isdir(source) else {"train": source}
  return {s: read_file(p, cfg.text_key, cfg.label_key) for s, p in files.items()}, None


def _tfds_rows(source: str, cfg, data_dir: str | None) -> tuple[dict, tuple | None]:
  """{split: rows} of a tensorflow-datasets set and its ClassLabel names (None: integer labels)."""
  name = source[len(TFDS):]
  try:
    tfds, builder = data.tfds_builder(name, data_dir, download=True)
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001  (tfds raises many kinds: not found, network, ...)
    if type(e).__name__ == "DatasetNotFoundError":
      raise UserDataError(f"{source}: no such tensorflow-datasets set (the catalog: "
                          "https://www.tensorflow.org/datasets/catalog/overview).") from None
    raise UserDataError(f"{source}: could not load ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}).") from None
  features = builder.info.features
  names = list(features.keys())
  text, pair, label = _keys(cfg.text_key, cfg.label_key, names)
  for key, flag in ((text, "text_key"), (pair, "text_key"), (label, "label_key")):
    if key is not None and key not in names:
      raise _missing(source, key, names, flag)
  class_names = getattr(features[label], "names", None)
  rows = {}
  for split, tfds_split in (("train", "train"), ("dev", "validation"), ("test", "test")):
    if tfds_split not in builder.info.splits:
      continue
    src = tfds.data_source(name, split=tfds_split, data_dir=data_dir, download=False)
    records = [src[i] for i in range(len(src))]
    if records and all(int(r[label]) < 0 for r in records):
      continue                                    # hidden labels (GLUE test): no such split
    out = []
    for i, r in enumerate(records):
      value = int(r[label])
      if value < 0:
        raise UserDataError(f"{source}[{tfds_split}]:{i}: missing label ({value}).")
      fields_ = {k: data._text(r[k]) for k in (text, pair) if k is not None}  # noqa: SLF001
      fields_[label] = value             # the index: tfds names may look like integers ('1', '2')
      out.append(_row(f"{source}[{tfds_split}]:{i}", fields_, text, pair, label))
    rows[split] = out
  if not rows.get("train"):
    raise UserDataError(f"{source}: no labelled 'train' split.")
  return rows, tuple(class_names) if class_names else None


# ---- classes and splits --------------------------------------------------------------------------

def _is_int(value: str) -> bool:
  return value.isdigit()


def resolve_classes(train: list[_Row], classes, from_data) -> tuple[tuple[str, ...], bool]:
  """(class names in label order, named): --classes, the data's label names, or the train labels
  (integers 0..max -> named False, else the sorted names)."""
  if classes:
    if len(set(classes)) != len(classes) or len(classes) < 2:
      raise UserDataError(f"give two or more distinct class names, got {list(classes)}.",
                          "classes")
    return tuple(classes), True
  if from_data:
    return tuple(from_data), True
  labels = {str(r.label) for r in train}
  if all(_is_int(v) for v in labels):
    return tuple(str(i) for i in range(max(int(v) for v in labels) + 1)), False
  return tuple(sorted(labels)), True


def to_examples(rows: list[_Row], names: tuple[str, ...], origin: str) -> list[Example]:
  """Rows with labels as class indices (a name, or an integer index); else `file:row` error."""
  index = {n: i for i, n in enumerate(names)}
  out = []
  for r in rows:
    label = r.label if isinstance(r.label, int) else index.get(r.label)
    if isinstance(r.label, str) and label is None and _is_int(r.label):
      label = int(r.label)
    if label is not None and not 0 <= label < len(names):
      label = None
    if label is None:
      raise UserDataError(f"{r.where}: label {r.label!r} is not one of the classes {list(names)} "
                          f"({origin}); name every class with --classes.")
    out.append(Example(text=r.text, label=label, text_b=r.text_b))
  return out


def draw_shots(labels, k: int, seed: int, num_classes: int, where: str = "data", names=None):
  """LM-BFF's k-shot draw over integer labels: (train, dev, rest) index lists; train and dev hold
  k of every class (by label, then draw order), rest the others in file order. UserDataError if a
  class has fewer than 2k examples."""
  order = np.random.default_rng(seed).permutation(len(labels))
  by_label = collections.defaultdict(list)
  for i in order:
    by_label[int(labels[i])].append(int(i))
  for label in range(num_classes):
    if len(by_label[label]) < 2 * k:
      name = repr(names[label]) if names else label
      raise UserDataError(f"{where}: class {name} has {len(by_label[label])} examples, fewer "
                          f"than --shots={k} for train plus {k} for dev ({2 * k}).", "shots")
  train = [i for c in range(num_classes) for i in by_label[c][:k]]
  dev = [i for c in range(num_classes) for i in by_label[c][k:2 * k]]
  used = set(train) | set(dev)
  return train, dev, [i for i in range(len(labels)) if i not in used]


def _overlap_warning(train_rows, test_rows, warn) -> None:
  seen = {(r.text, r.text_b): r.where for r in train_rows}
  both = [(r.where, seen[(r.text, r.text_b)]) for r in test_rows if (r.text, r.text_b) in seen]
  if both:
    warn(f"warning: {len(both)} test example(s) also in train, e.g. {both[0][0]} = "
         f"{both[0][1]}; the test accuracy is optimistic.")


def load(source: str, cfg, *, seed: int = 0, data_dir: str | None = None,
         warn=None) -> tuple[DatasetSpec, dict]:
  """(spec, {'train', 'dev', 'test' (None when there is none)}) of your own data.

  `cfg` has the DataFields (classes, shots, text_key, label_key); `seed` draws the shots;
  `data_dir` is the tfds data directory. `warn` gets the train/test overlap line (default stderr).
  """
  warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
  if cfg.shots is not None and cfg.shots < 1:
    raise UserDataError(f"must be >= 1, got {cfg.shots}.", "shots")
  if source.startswith(TFDS):
    rows, label_names = _tfds_rows(source, cfg, data_dir)
  else:
    rows, label_names = _file_rows(source, cfg)
  names, named = resolve_classes(rows["train"], cfg.classes, label_names)
  origin = ("--classes" if cfg.classes else "the data's label names" if label_names
            else "from the training labels")
  if cfg.shots is None and "dev" not in rows:
    raise UserDataError(f"{source}: no dev split; give a dev file, or --shots=K to draw train "
                        "and dev from the training data.")
  examples = {s: to_examples(r, names, origin) for s, r in rows.items()}
  train_file = rows["train"][0].where.rsplit(":", 1)[0]
  if cfg.shots is None:
    missing = [n for c, n in enumerate(names) if c not in {e.label for e in examples["train"]}]
    if missing:
      raise UserDataError(f"{train_file}: no example of class(es) {missing}.")
    splits = {"train": examples["train"], "dev": examples["dev"], "test": examples.get("test")}
    train_rows, test_rows = rows["train"], rows.get("test")
  else:
    pool = examples["train"]
    train, dev, rest = draw_shots([e.label for e in pool], cfg.shots, seed, len(names),
                                  train_file, names)
    test_split = "test" if "test" in rows else "dev" if "dev" in rows else None
    splits = {"train": [pool[i] for i in train], "dev": [pool[i] for i in dev],
              "test": examples[test_split] if test_split else [pool[i] for i in rest] or None}
    train_rows = [rows["train"][i] for i in train]
    test_rows = rows[test_split] if test_split else None   # the rest: disjoint by construction
  if test_rows:
    _overlap_warning(train_rows, test_rows, warn)
  pair = rows["train"][0].text_b is not None
  spec = DatasetSpec(short_name(source), tuple(" " + n for n in names),
                     mlm_template=_PAIR_MLM if pair else "{sentence_1} {prompt} <mask> .",
                     causal_template=_PAIR_CAUSAL if pair else "{sentence_1} {prompt}",
                     pair=pair, classes=names, named=named)
  return spec, splits
