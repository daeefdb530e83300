"""Classification data: RLPrompt's few-shot TSVs (bundled) and full sets through tensorflow-datasets.

Few-shot layout (RLPrompt `fsc_helpers.load_few_shot_classification_dataset`):
`<root>/<dataset>/16-<seed>/{train,dev}.tsv` and `<root>/<dataset>/test.tsv` (RLPrompt keeps a copy of
the test set in every seed folder; those copies are identical, and both layouts are read). Files are
tab-separated with CSV quoting, a header, a text column (`sentence` or `text`) and `label`.

The tensorflow-datasets loaders go through `tfds.data_source` (array_record; no TensorFlow), see
`load_tfds`.
"""
import csv
import dataclasses
import importlib.resources
import io
import os

import numpy as np

SEED_FOLDERS = {0: "16-100", 1: "16-13", 2: "16-21", 3: "16-42", 4: "16-87"}
SPLITS = ("train", "dev", "test")


class DataError(ValueError):
  """Bad data set name, split, seed or file."""


class MissingSplitError(DataError):
  """The data set has no file for the asked split (e.g. no test set)."""


@dataclasses.dataclass(frozen=True)
class Example:
  text: str
  label: int
  text_b: str | None = None   # second sentence of a pair task (RTE, MRPC)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A classification data set: its classes' verbalizers and RLPrompt's MLM template."""
  name: str
  verbalizers: tuple[str, ...]     # label i -> verbalizer text (one token of the task tokenizer)
  mlm_template: str = "{sentence_1} {prompt} <mask> ."
  causal_template: str = "{sentence_1} {prompt}"
  pair: bool = False
  # Single-token replacements, tried in order when a paper verbalizer is several tokens of the task
  # tokenizer (`hpprompt.tasks.verbalizers.for_tokenizer`); documented in hpprompt/data/README.md.
  alternatives: tuple[tuple[str, ...], ...] = ()
  # Your own data (hpprompt.tasks.user_data): the class names, and whether they are words (False:
  # integer labels without --classes, so the verbalizers must be given).
  classes: tuple[str, ...] | None = None
  named: bool = True

  @property
  def num_classes(self) -> int:
    return len(self.verbalizers)


_SENTIMENT2 = (" terrible", " great")
_DBPEDIA = (" Company", " Education", " Artist", " Sports", " Office", " Transportation",
            " Building", " Natural", " Village", " Animal", " Plant", " Album", " Film", " Written")
# Pair tasks with a masked LM: the prompt before the question mark and <mask> (as in the default
# single-sentence template, where it precedes <mask>).
_PAIR_MLM = "{sentence_1} {prompt} ? <mask> , {sentence_2}"
# Verbalizers of RLPrompt `fsc_helpers.py` as text ('Ġ' = leading space); see hpprompt/data/README.md.
DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("sst-2", _SENTIMENT2),
    DatasetSpec("mr", _SENTIMENT2),
    DatasetSpec("cr", _SENTIMENT2),
    DatasetSpec("yelp-2", _SENTIMENT2),
    DatasetSpec("sst-5", (" terrible", " bad", " okay", " good", " great")),
    DatasetSpec("yelp-5", (" terrible", " bad", " okay", " good", " great")),
    DatasetSpec("agnews", ("World", "Sports", "Business", "Tech"),
                mlm_template="<mask> {prompt} {sentence_1}"),
    DatasetSpec("subj", (" subjective", " objective")),
    DatasetSpec("trec", (" Description", " Entity", " Expression", " Human", " Location",
                         " Number")),
    # SmolLM2 splits 'sports' and 'politics': the same words with a leading space instead.
    DatasetSpec("yahoo", ("culture", "science", "health", "education", "computer", "sports",
                          "business", "music", "family", "politics"),
                alternatives=((" culture", " science", " health", " education", " computer",
                               " sports", " business", " music", " family", " politics"),)),
    # Trains with RLPrompt/PIN's default template: `{prompt} <mask> : {sentence_1}` is only in
    # their evaluation script (run_eval.py), never used for training. SmolLM2 splits ' Album'.
    DatasetSpec("dbpedia", _DBPEDIA,
                alternatives=(_DBPEDIA[:11] + (" album",) + _DBPEDIA[12:],)),
    # GLUE (InfoPrompt's tasks), read through tensorflow-datasets.
    DatasetSpec("glue/sst2", _SENTIMENT2),
    DatasetSpec("glue/cola", (" wrong", " correct")),
    DatasetSpec("glue/rte", (" Yes", " No"), mlm_template=_PAIR_MLM,
                causal_template="{sentence_1} ? {sentence_2} {prompt}", pair=True),
    DatasetSpec("glue/mrpc", (" No", " Yes"), mlm_template=_PAIR_MLM,
                causal_template="{sentence_1} ? {sentence_2} {prompt}", pair=True),
    DatasetSpec("ag_news_subset", ("World", "Sports", "Business", "Tech"),
                mlm_template="<mask> {prompt} {sentence_1}"),
    DatasetSpec("yelp_polarity_reviews", _SENTIMENT2),
)}


def get_spec(name: str) -> DatasetSpec:
  if name not in DATASETS:
    raise DataError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}, or give your "
                    "own data: a CSV/TSV/JSONL file or folder, or tfds:NAME.")
  return DATASETS[name]


def bundled_root() -> str:
  """The few-shot data shipped inside the package."""
  return str(importlib.resources.files("hpprompt") / "data" / "few_shot")


def read_utf8(path: str, kind: str = "TSV") -> str:
  """A data file's text (a leading byte-order mark dropped); DataError with `file:row` otherwise."""
  if not os.path.exists(path):
    raise DataError(f"data file not found: {path}")
  if os.path.isdir(path):
    raise DataError(f"{path}: a directory, expected a {kind} file")
  with open(path, "rb") as f:
    raw = f.read().removeprefix(b"\xef\xbb\xbf")
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    row = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{row}: not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as "
                    "UTF-8") from None


def read_tsv(path: str) -> list[Example]:
  """RLPrompt TSV: header, text column 'sentence' or 'text', integer 'label'; CSV quoting."""
  text = read_utf8(path)
  try:
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
  except csv.Error as e:
    raise DataError(f"{path}: malformed TSV ({e})") from None
  if not rows:
    raise DataError(f"{path}: empty file")
  header = rows[0]
  text_col = "text" if "text" in header else "sentence"
  if text_col not in header or "label" not in header:
    raise DataError(f"{path}: expected columns 'sentence' (or 'text') and 'label', got {header}")
  ti, li = header.index(text_col), header.index("label")
  out = []
  for n, row in enumerate(rows[1:], start=2):
    if len(row) != len(header):
      raise DataError(f"{path}:{n}: expected {len(header)} fields, got {len(row)}")
    try:
      label = int(row[li])
    except ValueError:
      raise DataError(f"{path}:{n}: label {row[li]!r} is not an integer class index") from None
    out.append(Example(text=row[ti], label=label))
  return out


def load_few_shot(name: str, seed: int, split: str, data_dir: str | None = None) -> list[Example]:
  """Few-shot split of an RLPrompt data set.

  Args:
    name: one of the 11 few-shot data sets (sst-2, mr, cr, yelp-2, sst-5, yelp-5, agnews, subj, trec,
      yahoo, dbpedia).
    seed: dataset seed 0-4 (folders 16-100, 16-13, 16-21, 16-42, 16-87).
    split: 'train', 'dev' or 'test'.
    data_dir: root folder with <name>/16-<seed>/... (default: the bundled copy).
  """
  spec = get_spec(name)
  if spec.name.startswith("glue/") or "_" in spec.name:
    raise DataError(f"{name!r} is a tensorflow-datasets set: use load_tfds.")
  if seed not in SEED_FOLDERS:
    raise DataError(f"dataset seed must be one of {sorted(SEED_FOLDERS)}, got {seed}.")
  if split not in SPLITS:
    raise DataError(f"split must be one of {SPLITS}, got {split!r}.")
  root = data_dir or bundled_root()
  folder = os.path.join(root, name, SEED_FOLDERS[seed])
  path = os.path.join(folder, f"{split}.tsv")
  if split == "test" and not os.path.exists(path):
    path = os.path.join(root, name, "test.tsv")
    if not os.path.exists(path):
      raise MissingSplitError(f"no test set for {name!r} under {root}: the bundled data has "
                              "test sets for sst-2, sst-5, mr, cr, subj, trec only; pass "
                              "--data_dir with the full layout.")
  if not os.path.exists(path):
    raise MissingSplitError(f"no {split} set for {name!r}: {path} not found.")
  examples = read_tsv(path)
  if not examples:
    raise DataError(f"{path}: no examples (only a header); the {split} split needs at least one.")
  for row, e in enumerate(examples, start=2):
    if not 0 <= e.label < spec.num_classes:
      raise DataError(f"{path}:{row}: label {e.label} outside 0..{spec.num_classes - 1} of "
                      f"{name!r}")
  return examples


# ---- tensorflow-datasets --------------------------------------------------------------------------

# tfds name -> (text field(s), label field); ag_news joins title and description like RLPrompt's files.
_TFDS_FIELDS = {
    "glue/sst2": (("sentence",), None),
    "glue/cola": (("sentence",), None),
    "glue/rte": (("sentence1",), "sentence2"),
    "glue/mrpc": (("sentence1",), "sentence2"),
    "ag_news_subset": (("title", "description"), None),
    "yelp_polarity_reviews": (("text",), None),
}


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # noqa: PLC0415
    import tensorflow_datasets.text  # noqa: F401,PLC0415  (registers glue, yelp: tfds bug 2)
  except ImportError as e:
    raise DataError("tensorflow-datasets loaders need `pip install 'hpprompt[data]'`.") from e
  return tfds


def tfds_builder(name: str, data_dir: str | None, download: bool):
  """(tfds module, prepared array_record builder of `name`); prepares it if needed and allowed."""
  tfds = _import_tfds()
  builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  if not builder.is_prepared():
    if not download:
      raise DataError(f"{name} is not prepared under {builder.data_dir}: pass download=True "
                      "(needs network) or prepare it with file_format='array_record'.")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return tfds, builder


def load_tfds(name: str, split: str, *, data_dir: str | None = None, k_per_class: int | None = None,
              seed: int = 0, download: bool = True) -> list[Example]:
  """A classification split read with `tfds.data_source` (array_record, no TensorFlow).

  Args:
    name: 'glue/sst2', 'glue/cola', 'glue/rte', 'glue/mrpc', 'ag_news_subset' or
      'yelp_polarity_reviews'.
    split: a tfds split ('train', 'validation', 'test', 'train[:10%]', ...).
    data_dir: tfds data directory.
    k_per_class: keep k examples per class, drawn with `seed` (InfoPrompt's 64/256-sample setting is
      k_per_class = 32/128 for a binary task).
    seed: sampling seed.
    download: download and prepare if not prepared yet (needs network; GCS copies are skipped, they
      are tfrecord). An already prepared `data_dir` is read without touching the network.

  Returns:
    Examples in the prepared (shuffled, deterministic) order. Texts are the builders' raw strings:
    ag_news is `title + " " + description` (as RLPrompt's agnews files); yelp keeps the source's
    `""` and literal `\\n` escapes (as RLPrompt's yelp-2 files).

  Raises:
    DataError: unknown name, data not prepared with `download=False`, a split without labels
      (the GLUE test splits: label -1), or a class with fewer than `k_per_class` examples.
  """
  if name not in _TFDS_FIELDS:
    raise DataError(f"unknown tfds data set {name!r}; choose one of {sorted(_TFDS_FIELDS)}.")
  fields, pair_field = _TFDS_FIELDS[name]
  tfds, _ = tfds_builder(name, data_dir, download)
  source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  examples = []
  for i in range(len(source)):
    row = source[i]
    text = " ".join(_text(row[f]) for f in fields)
    examples.append(Example(text=text, label=int(row["label"]),
                            text_b=_text(row[pair_field]) if pair_field else None))
  if any(e.label < 0 for e in examples):
    raise DataError(f"{name} split {split!r} has no labels (label -1: GLUE test labels are "
                    "hidden); evaluate on 'validation' or a slice of 'train'.")
  if k_per_class is not None:
    num_classes = get_spec(name).num_classes
    missing = set(range(num_classes)) - {e.label for e in examples}
    if missing:
      raise DataError(f"{name} split {split!r} has no examples of labels {sorted(missing)}; "
                      f"k_per_class={k_per_class} needs all {num_classes}.")
    examples = per_class_sample(examples, k_per_class, seed)
  return examples


def per_class_sample(examples: list[Example], k: int, seed: int) -> list[Example]:
  """k examples of every label, drawn without replacement with `seed` (order: by label, then draw)."""
  rng = np.random.default_rng(seed)
  out = []
  for label in sorted({e.label for e in examples}):
    idx = [i for i, e in enumerate(examples) if e.label == label]
    if len(idx) < k:
      raise DataError(f"label {label} has only {len(idx)} examples, fewer than k={k}.")
    out += [examples[i] for i in rng.choice(idx, size=k, replace=False)]
  return out
