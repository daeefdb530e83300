"""Bundled few-shot data (RLPrompt TSVs), the TSV reader, DatasetSpec and per_class_sample."""
import collections
import csv
import hashlib
import os
import shutil

import pytest

from hpprompt.tasks import data
from hpprompt.tasks.data import DataError, Example

FEW_SHOT = ("sst-2", "mr", "cr", "yelp-2", "sst-5", "yelp-5", "agnews", "subj", "trec", "yahoo",
            "dbpedia")
SEEDS = range(5)
ROOT = data.bundled_root()

# Test sets bundled with the package: rows and per-label counts (hpprompt/data/README.md).
TEST_COUNTS = {
    "sst-2": {0: 912, 1: 909},
    "sst-5": {0: 279, 1: 633, 2: 389, 3: 510, 4: 399},
    "mr": {0: 1000, 1: 1000},
    "cr": {0: 1000, 1: 1000},
    "subj": {0: 1000, 1: 1000},
    "trec": {0: 138, 1: 94, 2: 9, 3: 65, 4: 81, 5: 113},
}
TEST_ROWS = {"sst-2": 1821, "sst-5": 2210, "mr": 2000, "cr": 2000, "subj": 2000, "trec": 500}

# RLPrompt's verbalizers (fsc_helpers.py; 'Ġ' written as a leading space), label i -> entry i.
_G = " "
VERBALIZERS = {
    "sst-2": (_G + "terrible", _G + "great"),
    "mr": (_G + "terrible", _G + "great"),
    "cr": (_G + "terrible", _G + "great"),
    "yelp-2": (_G + "terrible", _G + "great"),
    "sst-5": tuple(_G + w for w in ("terrible", "bad", "okay", "good", "great")),
    "yelp-5": tuple(_G + w for w in ("terrible", "bad", "okay", "good", "great")),
    "agnews": ("World", "Sports", "Business", "Tech"),
    "subj": (_G + "subjective", _G + "objective"),
    "trec": tuple(_G + w for w in ("Description", "Entity", "Expression", "Human", "Location",
                                   "Number")),
    "yahoo": ("culture", "science", "health", "education", "computer", "sports", "business",
              "music", "family", "politics"),
    "dbpedia": tuple(_G + w for w in ("Company", "Education", "Artist", "Sports", "Office",
                                      "Transportation", "Building", "Natural", "Village",
                                      "Animal", "Plant", "Album", "Film", "Written")),
}
# Rows whose text is a single space, as in RLPrompt's files (cr's test.tsv has one too, row 768).
BLANK_TEXTS = {("cr", 1, "train"): [Example(" ", 1)], ("cr", 3, "train"): [Example(" ", 0)]}
# PIN/RLPrompt training templates (fsc_helpers.py): agnews its own, the rest (dbpedia included;
# `{prompt} <mask> : {sentence_1}` is only in their evaluation script) the default.
MLM_TEMPLATES = {"agnews": "<mask> {prompt} {sentence_1}"}


def _all_tsvs():
  out = []
  for dirpath, _, files in os.walk(ROOT):
    out += [os.path.join(dirpath, f) for f in files if f.endswith(".tsv") and f != "MANIFEST.tsv"]
  return sorted(out)


# ---- load_few_shot on the bundled data -----------------------------------------------------------

@pytest.mark.parametrize("name", FEW_SHOT)
def test_train_dev_counts(name):
  n = len(VERBALIZERS[name])
  for seed in SEEDS:
    for split in ("train", "dev"):
      examples = data.load_few_shot(name, seed, split)
      counts = collections.Counter(e.label for e in examples)
      assert counts == {label: 16 for label in range(n)}, (name, seed, split)
      assert all(isinstance(e.text, str) and e.text_b is None for e in examples)
      blank = [e for e in examples if not e.text.strip()]
      assert blank == BLANK_TEXTS.get((name, seed, split), []), (name, seed, split)


@pytest.mark.parametrize("name", sorted(TEST_ROWS))
def test_bundled_test_sets(name):
  first = data.load_few_shot(name, 0, "test")
  assert len(first) == TEST_ROWS[name]
  assert collections.Counter(e.label for e in first) == TEST_COUNTS[name]
  blank = [i for i, e in enumerate(first) if not e.text.strip()]
  assert blank == ([768] if name == "cr" else [])
  for seed in range(1, 5):                      # one test set, whatever the seed
    assert data.load_few_shot(name, seed, "test") == first


@pytest.mark.parametrize("name", ["agnews", "yahoo", "yelp-2", "yelp-5", "dbpedia"])
def test_test_set_not_bundled(name):
  with pytest.raises(DataError, match=f"no test set for '{name}'.*data_dir"):
    data.load_few_shot(name, 0, "test")


def test_bad_arguments():
  with pytest.raises(DataError, match="unknown data set 'sst2'"):
    data.load_few_shot("sst2", 0, "train")
  for seed in (-1, 5, 42, 100):
    with pytest.raises(DataError, match="seed must be one of"):
      data.load_few_shot("sst-2", seed, "train")
  for split in ("validation", "Train", ""):
    with pytest.raises(DataError, match="split must be one of"):
      data.load_few_shot("sst-2", 0, split)
  for name in ("glue/sst2", "ag_news_subset", "yelp_polarity_reviews"):
    with pytest.raises(DataError, match="use load_tfds"):
      data.load_few_shot(name, 0, "train")


def test_subj_train_equals_dev():
  """Quirk kept from RLPrompt: subj's dev.tsv is its train.tsv."""
  for seed in SEEDS:
    assert data.load_few_shot("subj", seed, "train") == data.load_few_shot("subj", seed, "dev")


# ---- file integrity and CSV quoting --------------------------------------------------------------

def _manifest():
  with open(os.path.join(ROOT, "MANIFEST.tsv"), encoding="utf-8") as f:
    return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def test_manifest_sha256_and_counts():
  rows = _manifest()
  listed = set()
  for path, size, n_rows, fmt, label_counts, sha in rows:
    assert path.startswith("few_shot/"), path
    full = os.path.join(ROOT, path[len("few_shot/"):])
    listed.add(os.path.normpath(full))
    with open(full, "rb") as f:
      blob = f.read()
    assert hashlib.sha256(blob).hexdigest() == sha, path
    assert len(blob) == int(size), path
    examples = data.read_tsv(full)
    assert len(examples) == int(n_rows), path
    want = dict(item.split(":") for item in label_counts.split())
    got = collections.Counter(e.label for e in examples)
    assert got == {int(k): int(v) for k, v in want.items()}, path
    assert fmt in ("tsv(sentence,label)", "tsv(text,label)"), path
  assert len(rows) == 116
  assert listed == {os.path.normpath(p) for p in _all_tsvs()}   # nothing unlisted, nothing missing


def test_csv_quoting_matches_naive_split_where_no_quotes():
  differing = 0
  for path in _all_tsvs():
    with open(path, "rb") as f:
      raw = f.read().decode("utf-8")
    eol = "\r\n" if "\r\n" in raw else "\n"                 # yahoo, subj, trec, ... are CRLF
    lines = raw.split(eol)
    assert lines[-1] == "", path
    lines = lines[:-1]
    with open(path, newline="", encoding="utf-8") as f:
      rows = list(csv.reader(f, delimiter="\t"))
    assert len(rows) == len(lines), path                   # no quoted field spans lines
    assert all(len(r) == 2 for r in rows), path
    for row, line in zip(rows, lines):
      if '"' not in line:
        assert row == line.split("\t"), (path, line)
      elif row != line.split("\t"):
        differing += 1
    assert [Example(r[0], int(r[1])) for r in rows[1:]] == data.read_tsv(path), path
  assert differing > 100                                     # quoting matters on this data


def test_quoted_fields_by_hand():
  # A quoted dbpedia text holds a tab: a naive split would make 3 fields.
  dbpedia = data.load_few_shot("dbpedia", 1, "train")
  hit = [e for e in dbpedia if "She was ordered\ton 25 August 1941" in e.text]
  assert len(hit) == 1 and hit[0].label == 5
  assert hit[0].text.startswith(" German submarine U-867")      # leading space kept
  # yelp-2: '\""""smothered' in the file is '\""smothered' after CSV unquoting.
  yelp = data.load_few_shot("yelp-2", 0, "train")
  assert any('I had the \\""smothered and covered\\""-- chuck steak' in e.text for e in yelp)


# ---- other layouts and malformed files -----------------------------------------------------------

def test_rlprompt_layout_test_in_seed_folder(tmp_path):
  """RLPrompt keeps test.tsv inside every 16-<seed> folder; that copy is read first."""
  src = os.path.join(ROOT, "trec")
  dst = tmp_path / "trec"
  shutil.copytree(src, dst)
  with open(dst / "test.tsv", "rb") as f:
    test_bytes = f.read()
  os.remove(dst / "test.tsv")
  for folder in data.SEED_FOLDERS.values():
    with open(dst / folder / "test.tsv", "wb") as f:
      f.write(test_bytes)
  full = data.load_few_shot("trec", 0, "test")
  for seed in SEEDS:
    assert data.load_few_shot("trec", seed, "test", data_dir=str(tmp_path)) == full
    assert (data.load_few_shot("trec", seed, "train", data_dir=str(tmp_path))
            == data.load_few_shot("trec", seed, "train"))
  # A seed-folder copy wins over a root test.tsv.
  with open(dst / "test.tsv", "wb") as f:
    f.write(test_bytes)
  with open(dst / "16-13" / "test.tsv", "w", encoding="utf-8") as f:
    f.write('sentence\tlabel\n"What is ""CPU"", short for?"\t2\n')
  assert data.load_few_shot("trec", 1, "test", data_dir=str(tmp_path)) == [
      Example('What is "CPU", short for?', 2)]
  assert data.load_few_shot("trec", 0, "test", data_dir=str(tmp_path)) == full


def test_full_layout_test_for_unbundled_set(tmp_path):
  folder = tmp_path / "agnews" / "16-100"
  folder.mkdir(parents=True)
  (tmp_path / "agnews" / "test.tsv").write_text("sentence\tlabel\nWorld news\t0\nTech news\t3\n")
  assert data.load_few_shot("agnews", 0, "test", data_dir=str(tmp_path)) == [
      Example("World news", 0), Example("Tech news", 3)]


def test_malformed_files(tmp_path):
  def write(name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)
  with pytest.raises(DataError, match="not found"):
    data.read_tsv(str(tmp_path / "missing.tsv"))
  with pytest.raises(DataError, match="empty file"):
    data.read_tsv(write("empty.tsv", ""))
  with pytest.raises(DataError, match="expected columns"):
    data.read_tsv(write("header.tsv", "review\tstars\ngood\t1\n"))
  with pytest.raises(DataError, match=r"bad.tsv:3: expected 2 fields, got 3"):
    data.read_tsv(write("bad.tsv", "sentence\tlabel\nok\t1\nnot\tok\t0\n"))
  assert data.read_tsv(write("text.tsv", "label\ttext\n1\tswapped columns\n")) == [
      Example("swapped columns", 1)]
  # Labels outside the data set's classes.
  folder = tmp_path / "root" / "sst-2" / "16-100"
  folder.mkdir(parents=True)
  (folder / "train.tsv").write_text("sentence\tlabel\nfine\t1\nodd\t2\n")
  with pytest.raises(DataError, match=r"train.tsv:3: label 2 outside 0..1"):
    data.load_few_shot("sst-2", 0, "train", data_dir=str(tmp_path / "root"))
  # A label that is not an integer, bytes that are not UTF-8, a header without examples: file:row.
  with pytest.raises(DataError, match=r"words.tsv:3: label 'great' is not an integer"):
    data.read_tsv(write("words.tsv", "sentence\tlabel\nok\t1\nfine\tgreat\n"))
  (tmp_path / "latin1.tsv").write_bytes(b"sentence\tlabel\nok\t1\nna\xefve\t0\n")
  with pytest.raises(DataError, match=r"latin1.tsv:3: not UTF-8"):
    data.read_tsv(str(tmp_path / "latin1.tsv"))
  (folder / "dev.tsv").write_text("sentence\tlabel\n")
  with pytest.raises(DataError, match=r"dev.tsv: no examples"):
    data.load_few_shot("sst-2", 0, "dev", data_dir=str(tmp_path / "root"))


# ---- DatasetSpec ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FEW_SHOT)
def test_spec_num_classes_matches_train_labels(name):
  spec = data.get_spec(name)
  for seed in SEEDS:
    labels = {e.label for e in data.load_few_shot(name, seed, "train")}
    assert labels == set(range(spec.num_classes)), (name, seed)


def test_spec_verbalizers_and_templates():
  for name, verbalizers in VERBALIZERS.items():
    spec = data.get_spec(name)
    assert spec.name == name
    assert spec.verbalizers == verbalizers, name
    assert spec.mlm_template == MLM_TEMPLATES.get(name, "{sentence_1} {prompt} <mask> ."), name
    assert spec.causal_template == "{sentence_1} {prompt}", name
    assert not spec.pair
  assert set(FEW_SHOT) | {"glue/sst2", "glue/cola", "glue/rte", "glue/mrpc", "ag_news_subset",
                          "yelp_polarity_reviews"} == set(data.DATASETS)
  # tfds sets: label ids as the builders define them (ClassLabel order).
  assert data.get_spec("glue/sst2").verbalizers == VERBALIZERS["sst-2"]          # neg, pos
  assert data.get_spec("yelp_polarity_reviews").verbalizers == VERBALIZERS["sst-2"]  # "1", "2"
  assert data.get_spec("ag_news_subset").verbalizers == VERBALIZERS["agnews"]
  assert data.get_spec("glue/cola").verbalizers == (" wrong", " correct")      # unacc., acc.
  assert data.get_spec("glue/rte").verbalizers == (" Yes", " No")              # entail., not
  assert data.get_spec("glue/mrpc").verbalizers == (" No", " Yes")             # not equiv., eq.
  assert data.get_spec("glue/rte").pair and data.get_spec("glue/mrpc").pair
  with pytest.raises(DataError, match="unknown data set"):
    data.get_spec("imdb")


# ---- per_class_sample ----------------------------------------------------------------------------

def _synthetic(counts):
  return [Example(f"{label}-{i}", label) for label, n in counts.items() for i in range(n)]


def test_per_class_sample():
  examples = _synthetic({0: 10, 1: 4, 2: 7})
  got = data.per_class_sample(examples, 3, seed=7)
  assert [e.label for e in got] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  assert len(set(got)) == 9 and set(got) <= set(examples)
  assert data.per_class_sample(examples, 3, seed=7) == got
  assert len({tuple(data.per_class_sample(examples, 3, seed=s)) for s in range(8)}) > 1
  assert sorted(data.per_class_sample(examples, 4, seed=0)[4:8], key=lambda e: e.text) == (
      examples[10:14])                                      # k == count: the whole class
  with pytest.raises(DataError, match="label 1 has only 4 examples, fewer than k=5"):
    data.per_class_sample(examples, 5, seed=0)
