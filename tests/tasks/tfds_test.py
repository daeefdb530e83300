"""load_tfds through the real tensorflow-datasets builders, offline, on tiny checked-in sources.

The builders' download manager is patched to return tests/tasks/fixtures (files in the layout each
builder expects after extraction), GCS is off and sockets are blocked; data is prepared as
array_record and read back with `tfds.data_source` (no TensorFlow), see docs/environment.md §4.
"""
import collections
import contextlib
import os
import re
import socket
from unittest import mock

import pytest

tfds = pytest.importorskip("tensorflow_datasets")
import tensorflow_datasets.text  # noqa: E402,F401  (registers glue and yelp_polarity_reviews)
from tensorflow_datasets.text import glue  # noqa: E402

from hpprompt.tasks import data  # noqa: E402
from hpprompt.tasks.data import Example  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
NAMES = ("glue/sst2", "glue/cola", "glue/rte", "glue/mrpc", "ag_news_subset",
         "yelp_polarity_reviews")
# MRPC downloads three single files (no archive); every other URL is an archive whose extracted
# folder is the fixtures root (SST-2/, CoLA/, RTE/, ag_news_csv/, yelp_review_polarity_csv/).
_MRPC_FILES = {
    glue._MRPC_TRAIN: "MRPC/msr_paraphrase_train.txt",  # pylint: disable=protected-access
    glue._MRPC_TEST: "MRPC/msr_paraphrase_test.txt",  # pylint: disable=protected-access
    glue._MRPC_DEV_IDS: "MRPC/mrpc_dev_ids.tsv",  # pylint: disable=protected-access
}


def _local_download(self, urls):  # pylint: disable=unused-argument
  import tree  # noqa: PLC0415  (dm-tree, a tfds dependency)
  return tree.map_structure(lambda url: os.path.join(FIXTURES, _MRPC_FILES.get(url, "")), urls)


def _no_download(self, urls):
  raise AssertionError(f"download attempted: {urls}")


def _no_network(*args, **kwargs):
  raise AssertionError(f"network access attempted: {args}")


@contextlib.contextmanager
def _offline(download_fn):
  """Download manager replaced by `download_fn`; DNS and socket connects raise."""
  dm = tfds.download.DownloadManager
  with mock.patch.object(dm, "download", download_fn), \
      mock.patch.object(dm, "download_and_extract", download_fn), \
      mock.patch.object(socket, "getaddrinfo", _no_network), \
      mock.patch.object(socket.socket, "connect", _no_network):
    yield


def _prepare(name, data_dir):
  builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tfds"))
  with _offline(_local_download):
    for name in NAMES:
      _prepare(name, root)
  return root


# ---- independent readers of the fixture sources (not the builders' code) -----------------------

def _lines(rel, encoding="utf-8"):
  with open(os.path.join(FIXTURES, rel), encoding=encoding) as f:
    return f.read().splitlines()


def _glue_tsv(rel, text_cols, label_map=int):
  head, *rows = [line.split("\t") for line in _lines(rel)]
  out = []
  for row in rows:
    rec = dict(zip(head, row))
    texts = [rec[c] for c in text_cols]
    out.append(Example(texts[0], label_map(rec["label"]), texts[1] if len(texts) > 1 else None))
  return out


def _cola(rel):
  return [Example(row[3], int(row[1])) for row in (line.split("\t") for line in _lines(rel))]


def _mrpc(split):
  dev = {tuple(line.split("\t")) for line in _lines("MRPC/mrpc_dev_ids.tsv")}
  rows = [line.split("\t") for line in _lines("MRPC/msr_paraphrase_train.txt", "utf-8-sig")[1:]]
  return [Example(r[3], int(r[0]), r[4]) for r in rows if ((r[1], r[2]) in dev) == (split == "dev")]


def _ag(rel):
  out = []
  for line in _lines(rel):
    label, title, desc = re.fullmatch(r'"(\d)","(.*?)","(.*)"', line).groups()
    out.append(Example(f"{title} {desc}".replace('""', '"'), int(label) - 1))
  return out


def _yelp(rel):
  # The builder keeps the CSV body raw ('""' and '\n' stay), like RLPrompt's yelp-2 files.
  return [Example(m[2], int(m[1]) - 1)
          for m in (re.fullmatch(r'"([12])","(.*)"', line) for line in _lines(rel))]


_RTE_LABELS = {"entailment": 0, "not_entailment": 1}
EXPECTED = {
    ("glue/sst2", "train"): lambda: _glue_tsv("SST-2/train.tsv", ["sentence"]),
    ("glue/sst2", "validation"): lambda: _glue_tsv("SST-2/dev.tsv", ["sentence"]),
    ("glue/cola", "train"): lambda: _cola("CoLA/train.tsv"),
    ("glue/cola", "validation"): lambda: _cola("CoLA/dev.tsv"),
    ("glue/rte", "train"): lambda: _glue_tsv("RTE/train.tsv", ["sentence1", "sentence2"],
                                             _RTE_LABELS.get),
    ("glue/rte", "validation"): lambda: _glue_tsv("RTE/dev.tsv", ["sentence1", "sentence2"],
                                                  _RTE_LABELS.get),
    ("glue/mrpc", "train"): lambda: _mrpc("train"),
    ("glue/mrpc", "validation"): lambda: _mrpc("dev"),
    ("ag_news_subset", "train"): lambda: _ag("ag_news_csv/train.csv"),
    ("ag_news_subset", "test"): lambda: _ag("ag_news_csv/test.csv"),
    ("yelp_polarity_reviews", "train"): lambda: _yelp("yelp_review_polarity_csv/train.csv"),
    ("yelp_polarity_reviews", "test"): lambda: _yelp("yelp_review_polarity_csv/test.csv"),
}


def _key(e):
  return (e.label, e.text, e.text_b or "")


# ---- tests ---------------------------------------------------------------------------------------

def test_prepared_as_array_record(data_dir):
  for name in NAMES:
    builder = tfds.builder(name, data_dir=data_dir)
    assert builder.is_prepared(), name
    files = os.listdir(builder.data_dir)
    assert any(".array_record-" in f for f in files), (name, files)
    assert not any(".tfrecord-" in f for f in files), (name, files)


@pytest.mark.parametrize("name,split", sorted(EXPECTED))
def test_matches_source_files(data_dir, name, split):
  got = data.load_tfds(name, split, data_dir=data_dir, download=False)
  want = EXPECTED[name, split]()
  assert len(want) >= 3 and len({e.label for e in want}) >= 2    # fixtures cover both labels
  assert sorted(got, key=_key) == sorted(want, key=_key)
  pair = data.get_spec(name).pair
  assert all((e.text_b is not None) == pair for e in got)
  assert {e.label for e in got} <= set(range(data.get_spec(name).num_classes))


def test_hand_checked_rows(data_dir):
  """Quotes, commas and label ids, written out by hand (independent of the readers above)."""
  def load(name, split="train"):
    return set(data.load_tfds(name, split, data_dir=data_dir, download=False))
  # GLUE reads TSV with QUOTE_NONE: quotes stay literal, also at the start of a field.
  assert Example('"the film" , as they say , is a " must-see " ', 1) in load("glue/sst2")
  assert Example('"" a sometimes tedious film . "" ', 0) in load("glue/sst2", "validation")
  assert Example('John said "Mary left", and then he left too.', 1) in load("glue/cola")
  assert Example("They drank the pub.", 0) in load("glue/cola")
  rte = load("glue/rte")
  assert Example("Judie Vivian, chief executive at ProMedica, said \"we're pleased\".", 0,
                 "ProMedica's chief executive is Judie Vivian.") in rte       # entailment -> 0
  assert Example("The name for the Olympic mascot was chosen in a nationwide poll.", 1,
                 'The mascot was "chosen" by the athletes.') in rte          # not_entailment -> 1
  mrpc_dev = load("glue/mrpc", "validation")
  assert len(mrpc_dev) == 4 and sorted(e.label for e in mrpc_dev) == [0, 0, 0, 1]
  assert Example("\"I think you'll see a lot of job growth in the next two years,\" he said.", 0,
                 'He said the occupancy rate in 2002 was "about 75 percent".') in mrpc_dev
  # The BOM before "Quality" is skipped: the first train row keeps its label 1.
  assert Example('Amrozi accused his brother, whom he called "the witness", of deliberately '
                 'distorting his evidence.', 1,
                 'Referring to him as only "the witness", Amrozi accused his brother of '
                 'deliberately distorting his evidence.') in load("glue/mrpc")
  # ag_news: CSV quoting undone, title and description joined by one space, labels 1-4 -> 0-3.
  ag = load("ag_news_subset")
  assert Example('Najaf Truce, "Fragile" as Ever NAJAF, Iraq - A truce between US forces and '
                 'militants held, for now, in the holy city.', 0) in ag
  assert Example("Wall St. Bears Claw Back Into the Black (Reuters) Reuters - Short-sellers, "
                 "Wall Street's dwindling\\band of ultra-cynics, are seeing green again.", 2) in ag
  assert {e.label for e in ag} == {0, 1, 2, 3}
  # yelp: raw text between the outer quotes; "1" -> 0 (negative), "2" -> 1 (positive).
  yelp = load("yelp_polarity_reviews")
  assert Example('Frustrated, ""to say the least"": waited 45 minutes, then left.', 0) in yelp
  assert Example('Good place to grab a bite. \\n\\nI had the ""smothered and covered"" -- chuck '
                 'steak, mushrooms, onions, gravy.', 1) in yelp


@pytest.mark.parametrize("name", ["glue/sst2", "glue/cola", "glue/rte", "glue/mrpc"])
def test_glue_test_split_has_no_labels(data_dir, name):
  with pytest.raises(data.DataError, match="no labels"):
    data.load_tfds(name, "test", data_dir=data_dir, download=False)


def test_k_per_class(data_dir):
  full = data.load_tfds("glue/sst2", "train", data_dir=data_dir, download=False)
  draws = []
  for seed in range(5):
    got = data.load_tfds("glue/sst2", "train", data_dir=data_dir, download=False, k_per_class=3,
                         seed=seed)
    assert [e.label for e in got] == [0, 0, 0, 1, 1, 1]                # k per label, by label
    assert len(set(got)) == 6 and set(got) <= set(full)
    again = data.load_tfds("glue/sst2", "train", data_dir=data_dir, download=False,
                           k_per_class=3, seed=seed)
    assert got == again                                                 # deterministic per seed
    draws.append(tuple(got))
  assert len(set(draws)) > 1                                            # the seed matters
  ag = data.load_tfds("ag_news_subset", "train", data_dir=data_dir, download=False,
                      k_per_class=2)
  assert collections.Counter(e.label for e in ag) == {0: 2, 1: 2, 2: 2, 3: 2}


def test_k_per_class_too_few(data_dir):
  with pytest.raises(data.DataError, match="label 0 has only 4 examples"):
    data.load_tfds("glue/sst2", "train", data_dir=data_dir, download=False, k_per_class=5)
  with pytest.raises(data.DataError, match="no examples of labels"):    # a class absent
    data.load_tfds("glue/sst2", "train[:1]", data_dir=data_dir, download=False, k_per_class=1)


def test_split_slices(data_dir):
  def load(split):
    return data.load_tfds("glue/sst2", split, data_dir=data_dir, download=False)
  full = load("train")
  assert len(full) == 9
  assert load("train[:3]") == full[:3]
  assert load("train[-2:]") == full[-2:]
  assert load("train[2:5]") == full[2:5]
  assert len(load("train[:50%]")) in (4, 5)
  assert load("train[:50%]") + load("train[50%:]") == full
  assert load("validation[:2]") == load("validation")[:2]


def test_download_true_on_prepared_dir_is_offline(data_dir):
  with _offline(_no_download):
    for name, split in sorted(EXPECTED):
      got = data.load_tfds(name, split, data_dir=data_dir, download=True)
      assert sorted(got, key=_key) == sorted(EXPECTED[name, split](), key=_key)


def test_download_true_prepares_missing(tmp_path):
  with _offline(_local_download):
    got = data.load_tfds("yelp_polarity_reviews", "test", data_dir=str(tmp_path), download=True)
  assert sorted(got, key=_key) == sorted(EXPECTED["yelp_polarity_reviews", "test"](), key=_key)
  assert tfds.builder("yelp_polarity_reviews", data_dir=str(tmp_path)).is_prepared()


def test_not_prepared_without_download(tmp_path):
  with _offline(_no_download), pytest.raises(data.DataError, match="not prepared"):
    data.load_tfds("glue/sst2", "train", data_dir=str(tmp_path), download=False)


def test_unknown_name(data_dir):
  with pytest.raises(data.DataError, match="unknown tfds data set"):
    data.load_tfds("glue/qqp", "train", data_dir=data_dir, download=False)
