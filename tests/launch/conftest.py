"""Broken inputs for the launcher tests: few-shot data roots and model directories, built once."""
import os
import shutil

import numpy as np
import pytest

from hpprompt.tasks import data

SEED = data.SEED_FOLDERS[0]


def _lines(path: str) -> list[str]:
  with open(path, encoding="utf-8") as f:
    return f.readlines()


def make_data_root(root: str, test_lines: int = 65, edit=None) -> str:
  """SST-2 seed 0 (train, dev) and the first test_lines - 1 test sentences under root; `edit`
  gets {split: list of lines} (header first) and may change them."""
  src = os.path.join(data.bundled_root(), "sst-2")
  files = {split: _lines(os.path.join(src, SEED, f"{split}.tsv")) for split in ("train", "dev")}
  files["test"] = _lines(os.path.join(src, "test.tsv"))[:test_lines]
  if edit:
    edit(files)
  os.makedirs(os.path.join(root, "sst-2", SEED), exist_ok=True)
  for split, lines in files.items():
    if lines is None:
      continue
    path = os.path.join(root, "sst-2", *((SEED,) if split != "test" else ()), f"{split}.tsv")
    with open(path, "wb") as f:
      f.write(b"".join(line if isinstance(line, bytes) else line.encode("utf-8")
                       for line in lines))
  return root


def _set_label(split, row, value):
  def edit(files):
    cells = files[split][row - 1].rstrip("\n").split("\t")
    files[split][row - 1] = "\t".join(cells[:-1] + [value]) + "\n"
  return edit


def _bad_bytes(files):
  files["train"][7] = files["train"][7].encode("utf-8").replace(b" ", b" \xff", 1)


DATA_EDITS = {
    "good": None,
    "bad_label": _set_label("train", 6, "positive"),
    "label_range": _set_label("dev", 4, "5"),
    "bad_bytes": _bad_bytes,
    "empty_dev": lambda files: files.update(dev=files["dev"][:1]),
    "no_test": lambda files: files.update(test=None),
    "bad_columns": lambda files: files["train"].__setitem__(0, "text\tlab\n"),
    "wrong_fields": lambda files: files["train"].__setitem__(4, files["train"][4].replace(
        "\t", "\tx\t", 1)),
}


@pytest.fixture(scope="session")
def data_roots(tmp_path_factory) -> dict:
  base = tmp_path_factory.mktemp("data_roots")
  return {name: make_data_root(str(base / name), edit=edit) for name, edit in DATA_EDITS.items()}


class Evil:
  """Unpickling this would run a shell command that creates MARKER."""
  marker = ""

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="session")
def broken_models(tiny_gpt2_dir, tmp_path_factory) -> dict:
  """Copies of the tiny GPT-2 directory with one thing broken each; 'marker' must never appear."""
  import torch  # noqa: PLC0415
  base = tmp_path_factory.mktemp("broken_models")
  out = {"marker": str(base / "PWNED")}

  def copy(name):
    path = str(base / name)
    shutil.copytree(tiny_gpt2_dir, path)
    out[name] = path
    return path

  path = copy("truncated")
  weights = os.path.join(path, "model.safetensors")
  with open(weights, "rb") as f:
    blob = f.read()
  with open(weights, "wb") as f:
    f.write(blob[:len(blob) // 2])
  path = copy("malicious")
  os.remove(os.path.join(path, "model.safetensors"))
  Evil.marker = out["marker"]
  torch.save({"wte": Evil()}, os.path.join(path, "pytorch_model.bin"))
  path = copy("broken_bin")
  os.remove(os.path.join(path, "model.safetensors"))
  with open(os.path.join(path, "pytorch_model.bin"), "wb") as f:
    # A pickle header with an unknown protocol (torch warns about it: the warning must not reach
    # the user's terminal beside the one-line error), then fixed random bytes.
    f.write(b"\x80\x65" + np.random.default_rng(0).bytes(2000))
  for name, text in (("bad_config", '{"model_type": "gpt2",'), ("list_config", "[1, 2]"),
                     ("unknown_type", '{"model_type": "mamba"}')):
    with open(os.path.join(copy(name), "config.json"), "w") as f:
      f.write(text)
  os.remove(os.path.join(copy("no_tokenizer"), "tokenizer.json"))
  with open(os.path.join(copy("broken_tokenizer"), "tokenizer.json"), "w") as f:
    f.write("{")
  out["file"] = str(base / "a_file")
  with open(out["file"], "w") as f:
    f.write("not a model\n")
  return out
