"""run.lock: one process per run directory, with other real processes; stale locks taken over."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from hpprompt.training import lock
from hpprompt.training import run as run_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A second process that tries to take the directory: prints 'took' or 'refused: <message>'.
_TRY = ("import sys; from hpprompt.training import lock\n"
        "try:\n  lock.acquire(sys.argv[1]); print('took')\n"
        "except lock.LockedError as e:\n  print('refused:', e)\n")


def _other_process(directory) -> str:
  out = subprocess.run([sys.executable, "-c", _TRY, str(directory)], cwd=REPO, text=True,
                       capture_output=True, timeout=120)
  assert out.returncode == 0, out.stderr
  return out.stdout.strip()


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def _plant(directory, **record) -> str:
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, lock.LOCK_NAME)
  with open(path, "w") as f:
    json.dump(record, f)
  return path


@pytest.fixture(autouse=True)
def _release():
  yield
  lock.release_all()


def test_held_directory_refuses_another_process_and_is_released(tmp_path):
  held = lock.acquire(tmp_path / "a" / "w")           # creates both directories
  record = json.loads(open(held.path).read())
  assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
  assert record["start"] == lock.process_start(os.getpid())
  assert lock.acquire(tmp_path / "a" / "w") is held    # the same process: the same lock
  refused = _other_process(tmp_path / "a" / "w")
  assert refused.startswith("refused:") and f"process {os.getpid()} on host" in refused
  held.release()
  assert not (tmp_path / "a").exists()                 # nothing written: nothing left behind
  assert _other_process(tmp_path / "a" / "w") == "took"
  assert not (tmp_path / "a").exists()                 # that process released it at exit


def test_release_keeps_a_directory_that_holds_files(tmp_path):
  held = lock.acquire(tmp_path / "w")
  (tmp_path / "w" / "config.json").write_text("{}")
  held.release()
  assert os.listdir(tmp_path / "w") == ["config.json"]


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
  pid = _dead_pid()
  _plant(tmp_path / "w", pid=pid, host=socket.gethostname(), start=None)
  held = lock.acquire(tmp_path / "w")
  assert held.took_over["pid"] == pid
  assert json.loads(open(held.path).read())["pid"] == os.getpid()


def test_reused_process_id_is_stale_but_a_live_holder_is_not(tmp_path):
  """A live process with another start time than the lock's is a reused process id: stale. The
  same start time: the holder runs (refused, even though it holds no flock)."""
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    start = lock.process_start(sleeper.pid)
    assert start is not None and lock.is_alive(sleeper.pid, start)
    _plant(tmp_path / "a", pid=sleeper.pid, host=socket.gethostname(), start=start + 1)
    assert lock.acquire(tmp_path / "a").took_over["pid"] == sleeper.pid
    _plant(tmp_path / "b", pid=sleeper.pid, host=socket.gethostname(), start=start)
    with pytest.raises(lock.LockedError, match=f"process {sleeper.pid} on host"):
      lock.acquire(tmp_path / "b")
  finally:
    sleeper.kill()
    sleeper.wait()
  assert not lock.is_alive(sleeper.pid, start)


def test_lock_of_another_host_is_refused(tmp_path):
  _plant(tmp_path / "w", pid=_dead_pid(), host="elsewhere", start=None)
  with pytest.raises(lock.LockedError, match="on host elsewhere.*delete the lock file"):
    lock.acquire(tmp_path / "w")


def test_planted_symlink_lock_file_is_refused(tmp_path):
  outside = tmp_path / "outside.txt"
  outside.write_text("keep")
  os.makedirs(tmp_path / "w")
  os.symlink(outside, tmp_path / "w" / lock.LOCK_NAME)
  with pytest.raises(lock.LockedError, match="symbolic link"):
    lock.acquire(tmp_path / "w")
  assert outside.read_text() == "keep"


def test_process_start_matches_proc_stat():
  """Field 22 of /proc/PID/stat, read here independently (the name field may hold spaces)."""
  with open(f"/proc/{os.getpid()}/stat") as f:
    text = f.read()
  assert lock.process_start(os.getpid()) == int(text[text.rindex(")") + 2:].split(" ")[19])
  assert lock.process_start(_dead_pid()) is None


def test_check_workdir_locks_and_unlocks_on_a_refusal(tmp_path):
  """A refused run (here: --resume without a checkpoint) releases at once and leaves nothing."""
  with pytest.raises(run_lib.RunError, match="no checkpoint"):
    run_lib.check_workdir(str(tmp_path / "w"), resume=True, lock=True)
  assert not (tmp_path / "w").exists() and not lock.holds(str(tmp_path / "w"))
  run_lib.check_workdir(str(tmp_path / "w"), resume=False, lock=True)
  assert lock.holds(str(tmp_path / "w"))
  other = subprocess.run([sys.executable, "-c", "import sys\nfrom hpprompt.training import run\n"
                          "run.check_workdir(sys.argv[1], False, lock=True)", str(tmp_path / "w")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
  assert other.returncode == 1 and f"in use by process {os.getpid()}" in other.stderr


@pytest.mark.parametrize("ending,code", [("return", None), ("error", 2), ("ctrl_c_saved", 130),
                                         ("ctrl_c_abort", "KeyboardInterrupt")])
def test_error_boundary_releases_the_run_directory(tmp_path, ending, code):
  """However the launcher ends (normally, an error, Ctrl-C after saving, a second Ctrl-C), the
  boundary releases what it held: the lock file is gone, and so is the directory it created."""
  from hpprompt.launch import cli  # noqa: PLC0415

  def launcher():
    run_lib.check_workdir(str(tmp_path / "w"), resume=False, lock=True)
    assert (tmp_path / "w" / lock.LOCK_NAME).exists()
    if ending == "error":
      raise ValueError("bad value")
    if ending == "ctrl_c_saved":
      raise run_lib.Interrupted()
    if ending == "ctrl_c_abort":
      raise KeyboardInterrupt
  if code is None:
    cli.run_main(launcher)
  elif code == "KeyboardInterrupt":
    with pytest.raises(KeyboardInterrupt):
      cli.run_main(launcher)
  else:
    with pytest.raises(SystemExit) as e:
      cli.run_main(launcher)
    assert e.value.code == code
  assert not (tmp_path / "w").exists() and not lock.holds(str(tmp_path / "w"))


@pytest.mark.parametrize("content", ["", "not json", '{"pid": -1}', '{"pid": 0, "host": "x"}',
                                     '{"pid": "12"}', "[1, 2]"])
def test_unreadable_lock_file_is_taken_over(tmp_path, content):
  os.makedirs(tmp_path / "w")
  (tmp_path / "w" / lock.LOCK_NAME).write_text(content)
  held = lock.acquire(tmp_path / "w")
  assert held.took_over is None
  assert json.loads(open(held.path).read())["pid"] == os.getpid()


def test_an_ended_process_not_yet_reaped_is_not_alive():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  deadline = time.time() + 60
  while lock._stat_fields(proc.pid)[0] != "Z":            # noqa: SLF001
    assert time.time() < deadline
    time.sleep(0.05)
  assert not lock.is_alive(proc.pid)
  proc.wait()
