"""One process per run directory: `run.lock`, naming the process that holds the directory.

`acquire(directory)` creates `<directory>/run.lock`, holds an exclusive `flock` on it and writes
the holder's process id, host and process start time into it; a second process gets `LockedError`
naming the holder. The kernel drops a flock when its process dies (kill -9 included), so a lock
file whose process is gone (or whose process id now belongs to another process) is stale: the next
run takes it over. A lock file naming another host is refused: that host's process cannot be
checked from here. `release` deletes the file, then the directories `acquire` created if they are
still empty (a run that failed before writing anything leaves nothing behind); launchers release
at the end of a run, on any error or Ctrl-C (the error boundary) and at exit.
"""
import atexit
import errno
import fcntl
import json
import os
import socket
import time

LOCK_NAME = "run.lock"


class LockedError(ValueError):
  """The directory is held by another live process (or by a process on another host)."""


def _stat_fields(pid: int) -> list[str] | None:
  """Fields 3... of /proc/PID/stat (Linux; the name before them may hold spaces), None if none."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None


def process_start(pid: int) -> int | None:
  """The start time of process `pid` in clock ticks since boot (Linux), None where unknown."""
  fields = _stat_fields(pid)
  try:
    return int(fields[19])     # field 22 of stat(5)
  except (TypeError, IndexError, ValueError):
    return None


def is_alive(pid: int, start: int | None = None) -> bool:
  """Whether process `pid` runs (and, with `start`, is the process that started then)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:     # it exists, owned by another user
    pass
  fields = _stat_fields(pid)
  if fields and fields[0] == "Z":   # ended, not yet reaped by its parent
    return False
  now = process_start(pid)
  return start is None or now is None or now == start


def describe(holder: dict) -> str:
  """'process PID on host HOST, since TIME' of a lock file's record."""
  if not holder:
    return "another process (starting)"
  started = holder.get("time")
  when = f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if started else ""
  return f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}{when}"


class RunLock:
  """The lock of one directory held by this process."""

  def __init__(self, directory: str, fd: int, created: list[str], took_over: dict | None):
    self.directory = directory
    self.path = os.path.join(directory, LOCK_NAME)
    self.fd = fd
    self.created = created           # directories acquire made, outermost first
    self.took_over = took_over       # the stale holder's record, if there was one

  def release(self) -> None:
    for key in [k for k, v in _HELD.items() if v is self]:
      del _HELD[key]
    if self.fd is None:
      return
    try:
      if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
        os.unlink(self.path)
    except OSError:
      pass
    os.close(self.fd)
    self.fd = None
    _undo(self.created)


_HELD: dict[str, RunLock] = {}


def _read(fd: int) -> dict:
  os.lseek(fd, 0, os.SEEK_SET)
  data = b""
  while chunk := os.read(fd, 4096):
    data += chunk
  try:
    record = json.loads(data.decode("utf-8"))
  except (UnicodeDecodeError, ValueError):
    return {}
  return record if isinstance(record, dict) else {}


def _open(path: str) -> int:
  try:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise LockedError(f"{path} is a symbolic link; remove it (a run writes its own lock file)."
                        ) from e
    raise


def acquire(directory: str) -> RunLock:
  """Holds `directory` for this process (creating it); LockedError if another process does.

  Acquiring a directory this process already holds returns the same lock."""
  held = _HELD.get(os.path.realpath(directory))
  if held is not None:
    return held
  created, parent = [], os.path.abspath(directory)
  while not os.path.exists(parent):
    created.insert(0, parent)
    parent = os.path.dirname(parent)
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, LOCK_NAME)
  me = {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid())}
  try:
    for _ in range(100):      # retried only while the file is replaced under us
      fd = _open(path)
      try:
        lock = _take(directory, path, fd, me, created)
      except BaseException:
        os.close(fd)
        raise
      if lock is not None:
        _HELD[os.path.realpath(directory)] = lock
        return lock
      os.close(fd)
    raise LockedError(f"{path} keeps being replaced by another process; choose another "
                      "--workdir.")
  except BaseException:
    _undo(created)
    raise


def _take(directory: str, path: str, fd: int, me: dict, created: list) -> "RunLock | None":
  """The lock through `fd` (an open lock file), None if the file was replaced meanwhile."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    mine = _held_by_inode(os.fstat(fd))
    if mine is not None:      # this process holds it under another path (a moved directory)
      os.close(fd)
      return mine
    raise LockedError(f"{directory} is in use by {describe(_read(fd))} (lock file {path}); wait "
                      "for that run to end or choose another --workdir.") from None
  try:
    if os.stat(path, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
      return None             # released (and deleted) by its holder between open and flock
  except FileNotFoundError:
    return None
  holder = _read(fd)
  pid = holder.get("pid")
  if not isinstance(pid, int) or pid <= 0:
    holder = {}               # not a lock record: nothing to respect
  elif (pid, holder.get("host")) == (me["pid"], me["host"]):
    holder = {}               # an earlier process with this id (this one holds no such lock)
  elif holder.get("host") != me["host"] or is_alive(pid, holder.get("start")):
    raise LockedError(f"{directory} is in use by {describe(holder)} (lock file {path}); if that "
                      "run is no longer running, delete the lock file.")
  os.ftruncate(fd, 0)
  os.pwrite(fd, (json.dumps({**me, "time": time.time()}) + "\n").encode("utf-8"), 0)
  return RunLock(directory, fd, created, holder or None)


def _held_by_inode(stat: os.stat_result) -> RunLock | None:
  for lock in _HELD.values():
    held = os.fstat(lock.fd)
    if (held.st_dev, held.st_ino) == (stat.st_dev, stat.st_ino):
      return lock
  return None


def _undo(created: list[str]) -> None:
  for directory in reversed(created):
    try:
      os.rmdir(directory)
    except OSError:
      break


def holds(directory: str) -> bool:
  """Whether this process holds `directory`."""
  return os.path.realpath(directory) in _HELD


def release(directory: str) -> None:
  """Releases this process's lock of `directory` (nothing if it holds none)."""
  held = _HELD.get(os.path.realpath(directory))
  if held is not None:
    held.release()


def release_all() -> None:
  """Releases every lock this process holds (the error boundary and exit call this)."""
  for lock in list(_HELD.values()):
    lock.release()


atexit.register(release_all)
