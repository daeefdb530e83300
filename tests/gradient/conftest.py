"""Tiny random task LMs for the baseline tests (built once per session).

`tiny_gpt2_dir`, `tiny_lm` and `tiny_roberta_dir` come from tests/conftest.py. `steep_lm` is the
same architecture and tokenizer with initializer_range 0.2: at the default 0.02 the verbalizer
logits are ~0.05 whatever the prompt, so no method can move the training loss off log 2 and "the
loss goes down" would test nothing.
"""
import os
import shutil

import pytest

from hpprompt.models import hub
from hpprompt.tasks import data
from tests import tiny


@pytest.fixture(scope="session")
def steep_lm(tmp_path_factory):
  pytest.importorskip("torch")
  path = str(tmp_path_factory.mktemp("steep_gpt2"))
  return hub.load_pretrained(tiny.make_gpt2(path, n_positions=256, initializer_range=0.2))


@pytest.fixture(scope="session")
def tiny_mlm(tiny_roberta_dir):
  """A tiny random RoBERTa MLM with the trained tokenizer (<s> x </s>, <mask>)."""
  return hub.load_pretrained(tiny_roberta_dir)


@pytest.fixture(scope="session")
def keyword_examples():
  """32 examples whose label is a keyword: '... was great' (1) / '... was terrible' (0)."""
  subjects = ["the film", "this movie", "a story", "the acting", "it", "the plot", "our show",
              "that book"]
  return [data.Example(text=f"{subjects[i % 8]} was {'great' if i % 2 else 'terrible'}",
                       label=i % 2) for i in range(32)]


@pytest.fixture(scope="session")
def sst2():
  return {split: data.load_few_shot("sst-2", 0, split) for split in ("train", "dev")}


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory):
  """The bundled SST-2 seed-0 split with the test set cut to its first 64 examples (fast tests)."""
  root = tmp_path_factory.mktemp("few_shot")
  src = os.path.join(data.bundled_root(), "sst-2")
  folder = root / "sst-2" / data.SEED_FOLDERS[0]
  folder.mkdir(parents=True)
  for split in ("train", "dev"):
    shutil.copy(os.path.join(src, data.SEED_FOLDERS[0], f"{split}.tsv"), folder / f"{split}.tsv")
  with open(os.path.join(src, "test.tsv"), encoding="utf-8") as f:
    lines = f.readlines()[:65]
  (root / "sst-2" / "test.tsv").write_text("".join(lines), encoding="utf-8")
  return str(root)
