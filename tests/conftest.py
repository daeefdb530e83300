"""Test set-up: four CPU devices so that sharded code runs in every test session; tiny LMs."""
import os

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import jax  # noqa: E402  (must come after XLA_FLAGS)

assert jax.device_count() == 4, "tests/conftest.py could not set 4 CPU devices"

import pytest  # noqa: E402


# Tiny random task / policy LMs with the trained BPE tokenizer of tests/tiny.py, built once.
@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
  pytest.importorskip("torch")
  from tests import tiny  # noqa: PLC0415
  return tiny.make_gpt2(str(tmp_path_factory.mktemp("tiny_gpt2")))


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory):
  pytest.importorskip("torch")
  from tests import tiny  # noqa: PLC0415
  return tiny.make_roberta(str(tmp_path_factory.mktemp("tiny_roberta")))


@pytest.fixture(scope="session")
def tiny_lm(tiny_gpt2_dir):
  """(model, tokenizer) of tiny_gpt2_dir."""
  from hpprompt.models import hub  # noqa: PLC0415
  return hub.load_pretrained(tiny_gpt2_dir)
