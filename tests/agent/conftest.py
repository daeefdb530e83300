"""A tiny random GPT-2 with a trained BPE tokenizer, shared by the agent tests (built once)."""
import pytest

from hpprompt.models import hub
from tests import tiny


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
  pytest.importorskip("torch")
  return tiny.make_gpt2(str(tmp_path_factory.mktemp("tiny_gpt2_agent")))


@pytest.fixture(scope="session")
def tiny_lm(tiny_gpt2_dir):
  return hub.load_pretrained(tiny_gpt2_dir)
