"""A checkpoint save that fails (a full disk, simulated here; a real one in
tests/launch/disk_full_test.py): one line, the unfinished step removed, the last good step intact,
and what Orbax's threads print held back (shown only when a save succeeds)."""
import errno
import logging
import os
import sys
import threading

import jax.numpy as jnp
import pytest
from absl import logging as absl_logging

from hpprompt.training import checkpoint
from hpprompt.training import lock
from hpprompt.training import run as run_lib


def _trees(step):
  return {"train": {"w": jnp.full((16, 4), float(step))}}


def _noisy_failure(manager_save):
  """A CheckpointManager.save that fails as Orbax does on a full disk: tracebacks printed from a
  thread, absl error records, then the error in the caller."""
  def save(self, step, *args, **kwargs):
    manager_save(self, step, *args, **kwargs)
    self.wait_until_finished()

    def spew():
      for _ in range(50):
        print("Traceback (most recent call last):\nRuntimeError: Event loop is closed",
              file=sys.stderr)
    thread = threading.Thread(target=spew)
    thread.start()
    thread.join()
    absl_logging.error("_SignalingThread.run() raised an exception: RESOURCE_EXHAUSTED")
    os.makedirs(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp-1", "d"))
    raise ValueError("RESOURCE_EXHAUSTED: Failed to write 59420 bytes to file 4: No space left "
                     "on device [os_error_code='28']")
  return save


@pytest.fixture
def run(tmp_path):
  yield run_lib.Run(str(tmp_path / "w"), {"seed": 0}, total_steps=4, resume=False,
                    checkpoint_every=1, stream=open(os.devnull, "w"))
  lock.release_all()


def test_failed_save_is_one_line_and_keeps_the_last_good_step(run, monkeypatch, capfd):
  run.save(1, _trees(1))
  capfd.readouterr()
  manager_cls = type(run.checkpointer.manager)
  monkeypatch.setattr(manager_cls, "save", _noisy_failure(manager_cls.save))
  with pytest.raises(checkpoint.SaveError) as e:
    run.save(2, _trees(2))
  assert str(e.value) == (f"checkpoint step 2 could not be written to {run.checkpointer.directory} "
                          "(no space left on device); the last good checkpoint is step 1: "
                          "--resume once the cause is fixed")
  out, err = capfd.readouterr()
  assert err == "" and out == ""
  assert os.listdir(run.checkpointer.directory) == ["1"]        # step 2 and its tmp removed
  assert checkpoint.check_manifest(run.checkpointer.step_dir(1)) is None
  monkeypatch.undo()
  restored = checkpoint.Checkpointer(run.checkpointer.directory).restore_latest(_trees(0))
  assert restored[0] == 1 and float(restored[1]["train"]["w"][0, 0]) == 1.0


def test_full_disk_while_writing_the_manifest(run, monkeypatch):
  monkeypatch.setattr(checkpoint, "write_manifest",
                      lambda d: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space", d)))
  with pytest.raises(checkpoint.SaveError, match=r"\(no space left on device\); no checkpoint "
                     "was kept"):
    run.save(1, _trees(1))
  assert os.listdir(run.checkpointer.directory) == []
  assert run.saved_step is None


def test_quiet_threads_shows_what_it_held_when_the_body_succeeds(capfd, caplog):
  with checkpoint.quiet_threads():
    print("kept for later", file=sys.stderr)
    logging.getLogger("absl").warning("a warning")
    assert capfd.readouterr().err == ""
  assert "kept for later" in capfd.readouterr().err
  assert [r.getMessage() for r in caplog.records] == ["a warning"]
  with pytest.raises(KeyError), checkpoint.quiet_threads():
    print("dropped", file=sys.stderr)
    raise KeyError("x")
  assert "dropped" not in capfd.readouterr().err


@pytest.mark.parametrize("error,full", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (ValueError("... Failed to write 3 bytes: No space left on device [os_error_code='28']"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (ValueError("RESOURCE_EXHAUSTED: out of memory"), False),
])
def test_is_disk_full(error, full):
  assert checkpoint.is_disk_full(error) == full
  try:
    raise RuntimeError("wrapped") from error
  except RuntimeError as wrapped:
    assert checkpoint.is_disk_full(wrapped) == full
