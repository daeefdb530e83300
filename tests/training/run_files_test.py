"""Run files are never written through a symbolic link planted in a run directory; a full disk while
writing them stops the run in one line; --resume with fewer steps than done is refused."""
import errno
import os

import jax.numpy as jnp
import pytest

from hpprompt.training import lock
from hpprompt.training import run as run_lib
from hpprompt.training import writers


@pytest.fixture(autouse=True)
def _release():
  yield
  lock.release_all()


@pytest.fixture
def outside(tmp_path):
  path = tmp_path / "outside.txt"
  path.write_text("not yours\n")
  return path


def _run(workdir, resume=False, steps=4):
  return run_lib.Run(str(workdir), {"seed": 0}, total_steps=steps, resume=resume,
                     checkpoint_every=2, stream=open(os.devnull, "w"))


def _trees(value):
  return {"train": {"w": jnp.full((3,), float(value))}}


def test_write_file_replaces_a_link_and_leaves_its_target(tmp_path, outside):
  os.symlink(outside, tmp_path / "results.json")
  writers.write_file(tmp_path / "results.json", "{}")
  assert not os.path.islink(tmp_path / "results.json")
  assert (tmp_path / "results.json").read_text() == "{}" and outside.read_text() == "not yours\n"
  assert sorted(os.listdir(tmp_path)) == ["outside.txt", "results.json"]   # no temporary left


def test_write_file_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
  (tmp_path / "a.json").write_text("old")
  monkeypatch.setattr(os, "replace", _raise(OSError(errno.ENOSPC, "No space left on device")))
  with pytest.raises(OSError):
    writers.write_file(tmp_path / "a.json", "new")
  assert os.listdir(tmp_path) == ["a.json"] and (tmp_path / "a.json").read_text() == "old"


def test_append_line_refuses_a_link(tmp_path, outside):
  os.symlink(outside, tmp_path / "metrics.jsonl")
  with pytest.raises(writers.LinkError, match="metrics.jsonl is a symbolic link"):
    writers.append_line(tmp_path / "metrics.jsonl", "{}")
  assert outside.read_text() == "not yours\n"
  writers.append_line(tmp_path / "m.jsonl", "a")
  writers.append_line(tmp_path / "m.jsonl", "b")
  assert (tmp_path / "m.jsonl").read_text() == "a\nb\n"


@pytest.mark.parametrize("name", ["metrics.jsonl", "config.json", "prompts.csv", "results.json",
                                  "test_outputs.0to1.txt", "report.md", "dangling"])
def test_run_directory_with_a_file_link_is_refused(tmp_path, outside, name):
  workdir = tmp_path / "w"
  os.makedirs(workdir)
  os.symlink(outside if name != "dangling" else tmp_path / "nothing", workdir / name)
  with pytest.raises(run_lib.RunError, match=f"w/{name} is a symbolic link") as e:
    _run(workdir)
  assert e.value.flag == "workdir" and outside.read_text() == "not yours\n"
  assert not os.path.exists(tmp_path / "nothing") and not lock.holds(str(workdir))


def test_link_to_a_directory_is_allowed(tmp_path):
  os.makedirs(tmp_path / "elsewhere")
  os.makedirs(tmp_path / "w")
  os.symlink(tmp_path / "elsewhere", tmp_path / "w" / "checkpoints")
  run = _run(tmp_path / "w")
  run.save(2, _trees(2))
  assert os.listdir(tmp_path / "elsewhere") == ["2"]


def test_resume_refuses_a_planted_metrics_link(tmp_path, outside):
  run = _run(tmp_path / "w")
  run.log(1, {"loss": 1.0})
  run.save(2, _trees(2))
  run.finish({})
  os.remove(tmp_path / "w" / "metrics.jsonl")
  os.symlink(outside, tmp_path / "w" / "metrics.jsonl")
  with pytest.raises(run_lib.RunError, match="metrics.jsonl is a symbolic link"):
    _run(tmp_path / "w", resume=True)
  assert outside.read_text() == "not yours\n"


def test_resume_with_fewer_steps_than_done_is_refused(tmp_path):
  run = _run(tmp_path / "w")
  run.save(4, _trees(4))
  run.finish({"test_accuracy": 0.5})
  before = {n: (tmp_path / "w" / n).read_text() for n in ("config.json", "results.json")}
  with pytest.raises(run_lib.RunError, match="2 is fewer than the 4 steps") as e:
    _run(tmp_path / "w", resume=True, steps=2)
  assert e.value.flag == "steps"
  assert {n: (tmp_path / "w" / n).read_text() for n in before} == before
  _run(tmp_path / "w", resume=True, steps=4)         # as many as done (or more) resumes


def _raise(error):
  def fail(*args, **kwargs):
    raise error
  return fail


def test_full_disk_while_logging_names_the_file_and_the_last_checkpoint(tmp_path, monkeypatch):
  run = _run(tmp_path / "w")
  run.save(2, _trees(2))
  monkeypatch.setattr(run_lib, "append_line", _raise(OSError(errno.ENOSPC, "No space left")))
  with pytest.raises(run_lib.DiskFullError, match="no space left on device writing .*metrics.jsonl"
                     "; the last good checkpoint is step 2"):
    run.log(3, {"loss": 1.0})
  monkeypatch.setattr(run_lib, "write_file", _raise(OSError(errno.ENOSPC, "No space left")))
  with pytest.raises(run_lib.DiskFullError, match="checkpoint is step 2"):
    run.write_results({})
  monkeypatch.setattr(run_lib, "append_line", _raise(OSError(errno.EACCES, "Permission denied")))
  with pytest.raises(PermissionError):                # other errors pass unchanged
    run.log(3, {"loss": 1.0})
