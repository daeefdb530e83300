"""Tiny random task LMs for the baseline tests (built once per session).

`tiny_gpt2_dir` is tests/tiny.make_gpt2. `steep_lm` is the same architecture and tokenizer with
initializer_range 0.2: at the default 0.02 the verbalizer logits are ~0.05 whatever the prompt, so
no method can move the training loss off log 2 and "the loss goes down" would test nothing.
"""
import os
import shutil

import pytest

from hpprompt.models import hub
from hpprompt.tasks import data
from tests import tiny


def _save(model_cls, cfg, path):
  import torch  # noqa: PLC0415
  torch.manual_seed(0)
  model_cls(cfg).save_pretrained(path)
  return path


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
  pytest.importorskip("torch")
  return tiny.make_gpt2(str(tmp_path_factory.mktemp("tiny_gpt2_baselines")))


@pytest.fixture(scope="session")
def tiny_lm(tiny_gpt2_dir):
  return hub.load_pretrained(tiny_gpt2_dir)


@pytest.fixture(scope="session")
def steep_lm(tmp_path_factory):
  pytest.importorskip("torch")
  import transformers  # noqa: PLC0415
  path = str(tmp_path_factory.mktemp("steep_gpt2"))
  vocab = tiny.save_tokenizer(path)
  cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=256, n_embd=32, n_layer=2, n_head=4,
                                bos_token_id=0, eos_token_id=2, pad_token_id=1,
                                initializer_range=0.2)
  return hub.load_pretrained(_save(transformers.GPT2LMHeadModel, cfg, path))


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory):
  """A tiny random RoBERTa MLM with the trained tokenizer (<s> x </s>, <mask>)."""
  pytest.importorskip("torch")
  import transformers  # noqa: PLC0415
  path = str(tmp_path_factory.mktemp("tiny_roberta"))
  vocab = tiny.save_tokenizer(path, masked_lm=True)
  cfg = transformers.RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=64,
                                   max_position_embeddings=258, type_vocab_size=1,
                                   pad_token_id=1, bos_token_id=0, eos_token_id=2)
  _save(transformers.RobertaForMaskedLM, cfg, path)
  assert os.path.exists(os.path.join(path, "config.json"))
  return hub.load_pretrained(path)


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
