"""Tiny random task LMs (GPT-2 and RoBERTa) with trained BPE tokenizers, built once per session."""
import pytest

from tests import tiny


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
  pytest.importorskip("torch")
  return tiny.make_gpt2(str(tmp_path_factory.mktemp("task_gpt2")))


@pytest.fixture(scope="session")
def roberta_dir(tmp_path_factory):
  pytest.importorskip("torch")
  return tiny.make_roberta(str(tmp_path_factory.mktemp("task_roberta")))
