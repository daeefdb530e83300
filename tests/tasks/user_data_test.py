"""Your own classification data (hpprompt.tasks.user_data): formats, classes, LM-BFF's k-shot draw
(against a NumPy reference and the closed-form inclusion probability), errors with `file:row`."""
import collections
import csv
import json
import os

import numpy as np
import pytest

from hpprompt.tasks import user_data
from hpprompt.tasks import verbalizers
from hpprompt.tasks.data import DataError
from hpprompt.tasks.data import Example
from hpprompt.tasks.templates import TemplateError
from hpprompt.tasks.user_data import DataFields

ROWS = [{"text": f'sentence {i}, with "quotes"', "text_b": f"second {i}",
         "label": ("bad", "good", "okay")[i % 3]} for i in range(30)]


def write(path, rows, columns=("text", "label")):
  """rows (dicts) as CSV / TSV (csv module quoting) or JSONL, by extension."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if path.endswith(".jsonl"):
    with open(path, "w", encoding="utf-8") as f:
      f.writelines(json.dumps({c: r[c] for c in columns}) + "\n" for r in rows)
    return path
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, delimiter="\t" if path.endswith(".tsv") else ",")
    writer.writerow(columns)
    writer.writerows([[r[c] for c in columns] for r in rows])
  return path


def load(source, **kw):
  seed = kw.pop("seed", 0)
  warnings = []
  spec, splits = user_data.load(str(source), DataFields(**kw), seed=seed, warn=warnings.append)
  return spec, splits, warnings


def expected(rows, names, pair=False):
  return [Example(r["text"], names.index(r["label"]), r["text_b"] if pair else None) for r in rows]


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl"])
def test_folder_in_every_format(tmp_path, ext):
  write(str(tmp_path / f"train{ext}"), ROWS[:20])
  write(str(tmp_path / f"dev{ext}"), ROWS[20:26])
  write(str(tmp_path / f"test{ext}"), ROWS[26:])
  spec, splits, warnings = load(tmp_path)
  names = ["bad", "good", "okay"]                      # the training labels, sorted
  assert spec.classes == tuple(names) and spec.verbalizers == (" bad", " good", " okay")
  assert spec.named and not spec.pair and spec.name == tmp_path.name
  assert splits == {"train": expected(ROWS[:20], names), "dev": expected(ROWS[20:26], names),
                    "test": expected(ROWS[26:], names)}
  assert warnings == []


@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_pairs_keys_and_validation_name(tmp_path, ext):
  cols = ("text", "text_b", "label")
  write(str(tmp_path / f"train{ext}"), ROWS[:20], cols)
  write(str(tmp_path / f"validation{ext}"), ROWS[20:], cols)
  spec, splits, _ = load(tmp_path)
  assert spec.pair and "{sentence_2}" in spec.causal_template and splits["test"] is None
  assert splits["dev"] == expected(ROWS[20:], ["bad", "good", "okay"], pair=True)
  renamed = [{"q": r["text"], "a": r["text_b"], "y": r["label"]} for r in ROWS]
  write(str(tmp_path / "r" / f"train{ext}"), renamed[:20], ("q", "a", "y"))
  write(str(tmp_path / "r" / f"dev{ext}"), renamed[20:], ("q", "a", "y"))
  _, again, _ = load(tmp_path / "r", text_key="q,a", label_key="y")
  assert again == splits


def test_sentence_column_bom_and_quoted_newlines(tmp_path):
  path = tmp_path / "train.csv"
  path.write_bytes(b'\xef\xbb\xbfsentence,label\n"two\nlines, one text",great\nplain,terrible\n')
  write(str(tmp_path / "dev.csv"), [{"text": "x", "label": "great"}])
  _, splits, _ = load(tmp_path)
  assert splits["train"] == [Example("two\nlines, one text", 0), Example("plain", 1)]


def test_class_names_integers_and_classes_flag(tmp_path):
  rows = [{"text": f"t{i}", "label": str(i % 3)} for i in range(12)]
  write(str(tmp_path / "train.csv"), rows)
  write(str(tmp_path / "dev.csv"), rows[:3])
  spec, splits, _ = load(tmp_path)
  assert spec.classes == ("0", "1", "2") and not spec.named
  assert [e.label for e in splits["train"]] == [i % 3 for i in range(12)]
  with pytest.raises(TemplateError, match="integers.*--verbalizers.*--classes"):
    verbalizers.for_tokenizer(spec, None)
  spec, named, _ = load(tmp_path, classes=("neg", "neu", "pos"))   # integers index --classes
  assert spec.named and spec.verbalizers == (" neg", " neu", " pos") and named == splits
  write(str(tmp_path / "n" / "train.csv"), ROWS[:9])
  write(str(tmp_path / "n" / "dev.csv"), ROWS[9:12])
  spec, splits, _ = load(tmp_path / "n", classes=("okay", "good", "bad"))   # the given order
  assert [e.label for e in splits["train"][:3]] == [2, 1, 0]


def reference_shots(labels, k, seed):
  """LM-BFF generate_k_shot_data.py in NumPy: shuffle, then a stable sort by label; each class's
  first k -> train, next k -> dev."""
  labels = np.asarray(labels)
  perm = np.random.default_rng(seed).permutation(len(labels))
  grouped = perm[np.argsort(labels[perm], kind="stable")]
  train, dev = [], []
  for c in np.unique(labels):
    members = grouped[labels[grouped] == c]
    train += members[:k].tolist()
    dev += members[k:2 * k].tolist()
  return train, dev


def test_shots_match_reference_and_are_stratified_and_reproducible():
  rng = np.random.default_rng(0)
  for trial in range(20):
    num_classes, k = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    labels = rng.integers(0, num_classes, 60)
    labels[:2 * k * num_classes] = np.repeat(np.arange(num_classes), 2 * k)  # enough per class
    rng.shuffle(labels)
    train, dev, rest = user_data.draw_shots(labels, k, trial, num_classes)
    assert (train, dev) == reference_shots(labels, k, trial)
    assert [labels[i] for i in train] == [labels[i] for i in dev] == np.repeat(
        np.arange(num_classes), k).tolist()                       # k per class, by label
    assert sorted(train + dev + rest) == list(range(60)) and rest == sorted(rest)
    assert user_data.draw_shots(labels, k, trial, num_classes) == (train, dev, rest)
  draws = {tuple(user_data.draw_shots(labels, k, s, num_classes)[0]) for s in range(5)}
  assert len(draws) > 1                                            # the seed matters


def test_shots_are_uniform_within_a_class():
  """Each example of class c is in train with probability k / n_c (sampling without replacement)."""
  labels = np.array([0] * 6 + [1] * 10)
  k, seeds = 2, 3000
  counts = np.zeros(len(labels))
  for seed in range(seeds):
    counts[user_data.draw_shots(labels, k, seed, 2)[0]] += 1
  want = np.where(labels == 0, k / 6, k / 10)
  np.testing.assert_allclose(counts / seeds, want, atol=4 * np.sqrt(0.25 / seeds))


def test_shots_splits_from_files(tmp_path):
  pool = write(str(tmp_path / "all.csv"), ROWS)
  spec, splits, warnings = load(pool, shots=2, seed=3)
  names = list(spec.classes)
  full = expected(ROWS, names)
  train, dev, rest = user_data.draw_shots([e.label for e in full], 2, 3, 3)
  assert splits == {"train": [full[i] for i in train], "dev": [full[i] for i in dev],
                    "test": [full[i] for i in rest]}          # one file: the rest is the test set
  assert collections.Counter(e.label for e in splits["train"]) == {0: 2, 1: 2, 2: 2}
  assert warnings == [] and load(pool, shots=2, seed=3)[1] == splits
  write(str(tmp_path / "f" / "train.csv"), ROWS)
  write(str(tmp_path / "f" / "dev.csv"), ROWS[:5])
  assert load(tmp_path / "f", shots=2, seed=3)[1]["test"] == full[:5]   # dev file -> test (LM-BFF)
  write(str(tmp_path / "f" / "test.jsonl"), ROWS[5:8])
  assert load(tmp_path / "f", shots=2, seed=3)[1]["test"] == full[5:8]


def test_train_test_overlap_is_one_warning(tmp_path):
  write(str(tmp_path / "train.csv"), ROWS[:20])
  write(str(tmp_path / "dev.csv"), ROWS[20:25])
  write(str(tmp_path / "test.csv"), ROWS[18:22])                   # rows 18, 19 are in train
  _, splits, warnings = load(tmp_path)
  assert len(splits["test"]) == 4 and len(warnings) == 1
  assert warnings[0].startswith("warning: 2 test example(s) also in train")
  assert f"{tmp_path / 'test.csv'}:2 = {tmp_path / 'train.csv'}:20" in warnings[0]


def _bad(tmp_path, name, train_text):
  folder = tmp_path / name
  folder.mkdir()
  (folder / "train.csv").write_bytes(train_text)
  write(str(folder / "dev.csv"), ROWS[:3])
  return folder


@pytest.mark.parametrize("name,train,kw,match", [
    ("missing_column", b"text,lab\na,good\n", {}, r"train.csv:1: no column 'label'.*--label_key"),
    ("missing_text_key", b"text,label\na,good\n", {"text_key": "review"},
     r"train.csv:1: no column 'review'"),
    ("missing_label", b"text,label\na,good\nb,\n", {}, r"train.csv:3: missing label"),
    ("empty_text", b"text,label\n,good\n", {}, r"train.csv:2: empty text"),
    ("unknown_label", b"text,label\na,good\nb,meh\n", {"classes": ("bad", "good", "okay")},
     r"train.csv:3: label 'meh' is not one of the classes"),
    ("empty_split", b"text,label\n", {}, r"train.csv: no examples"),
    ("not_utf8", b"text,label\na,good\nb \xff,bad\n", {}, r"train.csv:3: not UTF-8"),
    ("fields", b"text,label\na,good\nb,bad,x\n", {}, r"train.csv:3: expected 2 fields"),
    ("too_few", b"text,label\na,good\nb,bad\nc,okay\nd,okay\n", {"shots": 1},
     r"train.csv: class 'bad' has 1 examples, fewer than --shots=1"),
    ("absent_class", b"text,label\na,good\nb,bad\n", {"classes": ("bad", "good", "okay")},
     r"train.csv: no example of class\(es\) \['okay'\]"),
])
def test_bad_files_name_file_and_row(tmp_path, name, train, kw, match):
  with pytest.raises(DataError, match=match):
    load(_bad(tmp_path, name, train), **kw)


def test_bad_label_in_dev_and_other_errors(tmp_path):
  write(str(tmp_path / "train.csv"), ROWS[:9])
  (tmp_path / "dev.jsonl").write_text('{"text": "a", "label": "good"}\n{"text": "b", "label": '
                                      '"great"}\n')
  with pytest.raises(DataError, match=r"dev.jsonl:2: label 'great' is not one of the classes "
                     r"\['bad', 'good', 'okay'\] \(from the training labels\)"):
    load(tmp_path)
  (tmp_path / "dev.jsonl").write_text('{"text": "a", "label": "good"}\n[1]\n')
  with pytest.raises(DataError, match=r"dev.jsonl:2: not a JSON object"):
    load(tmp_path)
  (tmp_path / "dev.jsonl").unlink()
  with pytest.raises(DataError, match=r"no dev split.*--shots"):
    load(tmp_path)
  write(str(tmp_path / "dev.csv"), ROWS[:3])
  write(str(tmp_path / "dev.tsv"), ROWS[:3])
  with pytest.raises(DataError, match=r"several dev files"):
    load(tmp_path)
  (tmp_path / "nothing").mkdir()
  with pytest.raises(DataError, match=r"no train.csv"):
    load(tmp_path / "nothing")
  with pytest.raises(DataError, match=r"unknown format '.txt'"):
    load(write(str(tmp_path / "x.txt"), ROWS), shots=1)
  with pytest.raises(DataError, match=r"no such file or folder"):
    load(tmp_path / "missing.csv")
  for kw, flag in (({"shots": 0}, "shots"), ({"classes": ("a",)}, "classes"),
                   ({"text_key": "a,b,c"}, "text_key")):
    with pytest.raises(DataError) as e:
      load(tmp_path / "train.csv", **kw)
    assert e.value.flag == flag


def test_multi_token_class_names_the_class(tiny_lm):
  spec = user_data.DatasetSpec("mine", (" terrible", " very positive"),
                               classes=("terrible", "very positive"))
  with pytest.raises(TemplateError, match=r"class 'very positive' \(verbalizer ' very positive'\) "
                     r"is \d+ tokens.*--verbalizers"):
    verbalizers.for_tokenizer(spec, tiny_lm[1])


def test_is_user_and_short_name(tmp_path):
  assert not user_data.is_user("sst-2") and not user_data.is_user("glue/rte")
  assert not user_data.is_user("nope")                      # an unknown name, not a path
  assert user_data.is_user("tfds:imdb_reviews") and user_data.is_user("my.csv")
  assert user_data.is_user(str(tmp_path)) and user_data.is_user("data/x")
  assert user_data.short_name("data/reviews.csv") == "reviews"
  assert user_data.short_name(str(tmp_path) + "/") == tmp_path.name
  assert user_data.short_name("tfds:glue/sst2") == "tfds_glue_sst2"
  assert user_data.short_name("mr") == "mr"
