"""Checkpoint integrity (checksums, fall back to the newest intact step) and run directories
identified by content (moved, copied, relative, trailing slash; reuse after an early death)."""
import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.training import checkpoint
from hpprompt.training import run as run_lib


def _trees(step):
  return {"train": {"w": jnp.full((64, 8), float(step)), "b": jnp.arange(8.0) * step}}


def _save(directory, steps):
  ckpt = checkpoint.Checkpointer(directory)
  for s in steps:
    ckpt.save(s, _trees(s), {"step": s})
  return ckpt


def _damage(step_dir, how):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs
           if f != checkpoint.MANIFEST]
  target = max(files, key=os.path.getsize)
  if how == "manifest":
    os.remove(os.path.join(step_dir, checkpoint.MANIFEST))
    return
  with open(target, "r+b") as f:
    blob = f.read()
    if how == "flip":
      f.seek(len(blob) // 2)
      f.write(bytes([blob[len(blob) // 2] ^ 0x01]))
    else:
      f.truncate(len(blob) - 1)


@pytest.mark.parametrize("how", ["flip", "truncate", "manifest"])
def test_damaged_newest_step_falls_back_and_says_so(tmp_path, how):
  directory = str(tmp_path / "ckpt")
  _save(directory, [1, 2, 3]).close()
  _damage(os.path.join(directory, "3"), how)
  ckpt = checkpoint.Checkpointer(directory)
  said = []
  step, trees, meta = ckpt.restore_latest(_trees(0), log=said.append)
  assert step == 2 and meta == {"step": 2}
  np.testing.assert_array_equal(trees["train"]["w"], _trees(2)["train"]["w"])
  assert len(said) == 1 and said[0].startswith("checkpoint step 3 is damaged")
  assert ckpt.steps() == [2, 1] and os.path.isdir(str(tmp_path / "ckpt.damaged" / "3"))
  ckpt.save(3, _trees(3), {"step": 3})            # the step can be saved again
  assert ckpt.restore_latest(_trees(0))[0] == 3


def test_every_step_damaged_is_one_error(tmp_path):
  directory = str(tmp_path / "ckpt")
  _save(directory, [1, 2]).close()
  for s in (1, 2):
    _damage(os.path.join(directory, str(s)), "flip")
  with pytest.raises(checkpoint.CheckpointError, match="no intact checkpoint"):
    checkpoint.Checkpointer(directory).restore_latest(_trees(0), log=lambda _: None)


def test_keeps_three_steps_to_fall_back_to(tmp_path):
  ckpt = _save(str(tmp_path / "ckpt"), [1, 2, 3, 4, 5])
  assert ckpt.steps() == [5, 4, 3]
  assert all(checkpoint.check_manifest(ckpt.step_dir(s)) is None for s in ckpt.steps())


def _run(workdir, resume, config=None):
  return run_lib.Run(workdir, config or {"seed": 0, "workdir": workdir}, total_steps=4,
                     resume=resume, checkpoint_every=2, stream=open(os.devnull, "w"))


def test_moved_run_resumes_by_relative_path_with_trailing_slash(tmp_path, monkeypatch):
  first = _run(str(tmp_path / "a"), resume=False)
  first.save(2, _trees(2))
  first.log(1, {"loss": 1.0})
  first.checkpointer.close()
  shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))
  monkeypatch.chdir(tmp_path)
  moved = _run("b/", resume=True, config={"seed": 0, "workdir": "b/"})
  assert moved.run_id == first.run_id
  assert moved.restore(_trees(0)) is not None and moved.start_step == 2
  with pytest.raises(run_lib.RunError, match="different configuration") as e:
    _run("b", resume=True, config={"seed": 1, "workdir": "b"})
  assert e.value.flag == "resume"


def test_resume_needs_a_checkpoint_and_a_dead_run_dir_is_reused(tmp_path):
  workdir = str(tmp_path / "w")
  with pytest.raises(run_lib.RunError, match="no checkpoint") as e:
    _run(workdir, resume=True)
  assert e.value.flag == "resume" and not os.path.exists(workdir)
  dead = _run(workdir, resume=False)             # died before its first checkpoint
  dead.log(1, {"loss": 1.0})
  with pytest.raises(run_lib.RunError, match="no checkpoint"):
    _run(workdir, resume=True)
  fresh = _run(workdir, resume=False)
  assert not os.path.exists(fresh.metrics_path) and fresh.run_id != dead.run_id
  fresh.save(2, _trees(2))
  with pytest.raises(run_lib.RunError, match="already holds a run") as e:
    _run(workdir, resume=False)
  assert e.value.flag == "workdir"


def test_checkpoint_of_another_run_is_refused(tmp_path):
  one, two = _run(str(tmp_path / "one"), False), _run(str(tmp_path / "two"), False)
  one.save(2, _trees(2))
  two.checkpointer.close()
  shutil.rmtree(str(tmp_path / "two" / "checkpoints"))
  shutil.copytree(str(tmp_path / "one" / "checkpoints"), str(tmp_path / "two" / "checkpoints"))
  resumed = _run(str(tmp_path / "two"), resume=True)
  with pytest.raises(checkpoint.CheckpointError, match="belongs to another run"):
    resumed.restore(_trees(0))


def test_metrics_are_strict_json_and_a_cut_line_is_dropped(tmp_path):
  run = _run(str(tmp_path / "w"), resume=False)
  run.log(1, {"loss": float("nan"), "reward": np.float32(np.inf), "ok": 0.5})
  with open(run.metrics_path) as f:
    assert json.loads(f.readline()) == {"step": 1, "loss": None, "reward": None, "ok": 0.5}
  run.log(2, {"loss": 0.1})
  with open(run.metrics_path, "a") as f:
    f.write('{"step": 3, "lo')                     # a process killed mid-write
  run.save(2, _trees(2))
  resumed = _run(str(tmp_path / "w"), resume=True)
  resumed.restore(_trees(0))
  with open(run.metrics_path) as f:
    assert [json.loads(line)["step"] for line in f] == [1, 2]


def test_check_finite_names_the_step_and_quantity():
  run_lib.check_finite(3, loss=1.0, grads=np.ones(3), finite=True)
  with pytest.raises(run_lib.NonFiniteError, match="step 3: non-finite gradient norm"):
    run_lib.check_finite(3, loss=1.0, gradient_norm=float("inf"))
  with pytest.raises(run_lib.NonFiniteError, match="non-finite reward"):
    run_lib.check_finite(3, reward=np.array([1.0, np.nan]))
  with pytest.raises(run_lib.NonFiniteError, match="non-finite parameters"):
    run_lib.check_finite(3, parameters=False)
  assert run_lib.all_finite({"a": jnp.ones(3), "i": jnp.arange(3)})
  assert not run_lib.all_finite({"a": jnp.ones(3), "b": jnp.array([1.0, jnp.inf])})
