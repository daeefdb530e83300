"""`--dataset=tfds:NAME` through user_data, offline, on the tiny tfds sets that tfds_test prepares
from checked-in sources (its `data_dir` fixture); rows compared with `data.load_tfds`, which
tfds_test checks against independent readers of the same sources."""
import pytest

pytest.importorskip("tensorflow_datasets")

from hpprompt.tasks import data  # noqa: E402
from hpprompt.tasks import user_data  # noqa: E402
from hpprompt.tasks.user_data import DataFields  # noqa: E402
from tests.tasks.tfds_test import _no_download  # noqa: E402
from tests.tasks.tfds_test import _offline  # noqa: E402
from tests.tasks.tfds_test import data_dir  # noqa: E402,F401  (the prepared tiny tfds sets)


def load(name, data_dir, **kw):  # noqa: F811
  seed = kw.pop("seed", 0)
  with _offline(_no_download):
    return user_data.load(name, DataFields(**kw), seed=seed, data_dir=data_dir)


def test_glue_sst2_classes_from_the_label_feature(data_dir):  # noqa: F811
  spec, splits = load("tfds:glue/sst2", data_dir, text_key="sentence")
  assert spec.classes == ("negative", "positive") and spec.verbalizers == (" negative", " positive")
  assert splits["train"] == data.load_tfds("glue/sst2", "train", data_dir=data_dir, download=False)
  assert splits["dev"] == data.load_tfds("glue/sst2", "validation", data_dir=data_dir,
                                         download=False)
  assert splits["test"] is None                      # GLUE's test labels are hidden: no test split


def test_shots_draw_from_train_and_test_on_validation(data_dir):  # noqa: F811
  _, splits = load("tfds:glue/sst2", data_dir, text_key="sentence", shots=2, seed=4)
  train = data.load_tfds("glue/sst2", "train", data_dir=data_dir, download=False)
  picked, dev, _ = user_data.draw_shots([e.label for e in train], 2, 4, 2)
  assert splits["train"] == [train[i] for i in picked] and splits["dev"] == [train[i] for i in dev]
  assert splits["test"] == data.load_tfds("glue/sst2", "validation", data_dir=data_dir,
                                          download=False)


def test_pairs_and_four_classes(data_dir):  # noqa: F811
  spec, splits = load("tfds:glue/rte", data_dir, text_key="sentence1,sentence2")
  assert spec.pair and spec.classes == ("entailment", "not_entailment")
  assert splits["train"] == data.load_tfds("glue/rte", "train", data_dir=data_dir, download=False)
  spec, splits = load("tfds:ag_news_subset", data_dir, text_key="description", shots=1)
  assert spec.classes == ("World", "Sports", "Business", "Sci/Tech")
  full = data.load_tfds("ag_news_subset", "test", data_dir=data_dir, download=False)
  assert [e.label for e in splits["test"]] == [e.label for e in full]
  assert all(e.text in f.text for e, f in zip(splits["test"], full))  # description only


def test_missing_feature_and_unknown_set(data_dir):  # noqa: F811
  with pytest.raises(user_data.UserDataError, match=r"tfds:ag_news_subset: no column 'text' "
                     r"\(columns: \['description', 'label', 'title'\]\); name it with "
                     r"--text_key"):
    load("tfds:ag_news_subset", data_dir)
  with pytest.raises(user_data.UserDataError, match=r"tfds:no_such_set: no such tensorflow-"):
    load("tfds:no_such_set", data_dir)


def test_label_names_that_look_like_integers(data_dir):  # noqa: F811
  """yelp_polarity_reviews names its classes '1' and '2': labels stay the feature's indices."""
  want = data.load_tfds("yelp_polarity_reviews", "test", data_dir=data_dir, download=False)
  for classes in (None, ("negative", "positive")):
    spec, splits = load("tfds:yelp_polarity_reviews", data_dir, shots=1, classes=classes)
    assert spec.classes == (classes or ("1", "2")) and splits["test"] == want
