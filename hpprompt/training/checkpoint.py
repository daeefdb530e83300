"""Orbax checkpoints of pytrees plus a JSON metadata record, in `<workdir>/checkpoints/<step>/`.

Every saved step gets a manifest (`hpprompt_checksums.json`: SHA-256 and size of every file Orbax
wrote), written after Orbax has finished. A step whose manifest is missing or whose files differ
from it (truncated, flipped bytes, deleted) is damaged: `restore_latest` moves it aside to
`checkpoints.damaged/` and falls back to the newest intact step.

A save that fails (a full disk, a read-only directory) raises `SaveError` in one line once Orbax's
threads are done, after removing the unfinished step; what those threads print meanwhile (hundreds
of lines of tracebacks) is held back and shown only if the save succeeds after all.
"""
import contextlib
import errno
import glob
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import threading
import time

import jax
import orbax.checkpoint as ocp

from hpprompt.training.writers import write_file

MANIFEST = "hpprompt_checksums.json"


class CheckpointError(ValueError):
  """No intact checkpoint to restore, or a checkpoint that does not belong to this run."""


class SaveError(CheckpointError):
  """A checkpoint could not be written; the unfinished step was removed."""


def is_disk_full(e: BaseException) -> bool:
  """Whether `e` (or an exception it was raised from) reports a full disk (ENOSPC)."""
  while e is not None:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
      return True
    if "No space left on device" in str(e) or "os_error_code='28'" in str(e):
      return True
    e = e.__cause__ or e.__context__
  return False


def _reason(e: BaseException) -> str:
  if is_disk_full(e):
    return "no space left on device"
  text = " ".join((f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror
                   else str(e) or type(e).__name__).split())
  return text if len(text) <= 300 else text[:300] + "..."


class _Hold(logging.Filter):
  """Keeps log records back (each once) instead of letting them through."""

  def __init__(self):
    super().__init__()
    self.records: dict[int, logging.LogRecord] = {}

  def filter(self, record):
    self.records.setdefault(id(record), record)
    return False


# Threads that Orbax starts at a first save and keeps (not to be waited for).
_LASTING_THREADS = ("metadata_store", "ThreadPoolExecutor")


class _DropUnretrieved(logging.Filter):
  def filter(self, record):
    return "exception was never retrieved" not in record.getMessage()


def _drop_late_errors() -> None:
  """Silences what a failed save's leftovers report later, when they are garbage-collected or
  their TensorStore callbacks complete: asyncio's 'Task exception was never retrieved' and the
  'Event loop is closed' errors of callbacks into Orbax's closed event loop."""
  asyncio_logger = logging.getLogger("asyncio")
  if not any(isinstance(f, _DropUnretrieved) for f in asyncio_logger.filters):
    asyncio_logger.addFilter(_DropUnretrieved())
  previous = sys.unraisablehook
  if getattr(previous, "drops_closed_loop", False):
    return

  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"):
      previous(unraisable)
  hook.drops_closed_loop = True
  sys.unraisablehook = hook


@contextlib.contextmanager
def quiet_threads():
  """Holds back stderr and log records (Orbax's save threads) while the body runs; shows them
  afterwards only if the body succeeded."""
  hold, held_stderr = _Hold(), io.StringIO()
  targets = [logging.getLogger("absl"), *logging.getLogger().handlers]
  for target in targets:
    target.addFilter(hold)
  stderr, sys.stderr = sys.stderr, held_stderr
  ok = False
  try:
    yield
    ok = True
  finally:
    sys.stderr = stderr
    for target in targets:
      target.removeFilter(hold)
    if ok:
      stderr.write(held_stderr.getvalue())
      for record in hold.records.values():
        logging.getLogger(record.name).handle(record)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _files(directory: str) -> list[str]:
  out = []
  for root, _, names in os.walk(directory):
    out += [os.path.relpath(os.path.join(root, n), directory) for n in names if n != MANIFEST]
  return sorted(out)


def write_manifest(directory: str) -> None:
  """Checksums of every file under `directory` (written atomically, last)."""
  record = {name: {"sha256": _sha256(os.path.join(directory, name)),
                   "bytes": os.path.getsize(os.path.join(directory, name))}
            for name in _files(directory)}
  write_file(os.path.join(directory, MANIFEST), json.dumps(record, indent=1, sort_keys=True),
             sync=True)


def check_manifest(directory: str) -> str | None:
  """None if every file matches the manifest, else what is wrong (one line)."""
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    return "no checksum manifest (the save did not finish)"
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    return f"unreadable checksum manifest ({type(e).__name__})"
  for name, want in sorted(record.items()):
    file = os.path.join(directory, name)
    if not os.path.exists(file):
      return f"{name} is missing"
    if os.path.getsize(file) != want["bytes"]:
      return f"{name} has {os.path.getsize(file)} bytes, {want['bytes']} were saved"
    if _sha256(file) != want["sha256"]:
      return f"{name} does not match its checksum"
  return None


class Checkpointer:
  """Saves named pytrees and JSON metadata every few steps; restores the newest intact one."""

  def __init__(self, directory: str, max_to_keep: int = 3, *, write: bool = True):
    self.directory = os.path.abspath(directory)
    self.write = write           # this process writes manifests (process 0 of several hosts)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           cleanup_tmp_directories=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def steps(self) -> list[int]:
    """Saved steps, newest first."""
    return sorted(self.manager.all_steps(), reverse=True)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, trees: dict, meta: dict) -> None:
    """Saves and waits for the save to finish; SaveError (one line) if it failed."""
    args = {name: ocp.args.StandardSave(tree) for name, tree in trees.items()}
    args["meta"] = ocp.args.JsonSave(meta)
    threads = set(threading.enumerate())
    with quiet_threads():
      try:
        self.manager.save(step, args=ocp.args.Composite(**args), force=True)
        self.manager.wait_until_finished()
        if self.write:
          write_manifest(self.step_dir(step))
      except Exception as e:  # noqa: BLE001  (whatever Orbax raised: one line, the step removed)
        self._discard(step, threads)
        raise SaveError(f"checkpoint step {step} could not be written to {self.directory} "
                        f"({_reason(e)})") from e

  def _discard(self, step: int, threads: set, timeout: float = 60.0) -> None:
    """After a failed save: waits for the threads Orbax started (they go on after the first error
    and may still write), then removes what there is of `step` (it is no checkpoint)."""
    with contextlib.suppress(Exception):
      self.manager.wait_until_finished()
    end = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - threads:
      if thread.name.startswith(_LASTING_THREADS):
        continue
      with contextlib.suppress(Exception):     # Orbax's threads re-raise their error on join
        threading.Thread.join(thread, max(0.0, end - time.monotonic()))
    _drop_late_errors()
    for path in [self.step_dir(step)] + glob.glob(self.step_dir(step) + ".orbax-checkpoint-tmp*"):
      shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(Exception):
      self.manager.reload()

  def restore(self, step: int, templates: dict) -> tuple[dict, dict]:
    """Restores the pytrees named in `templates` (arrays or ShapeDtypeStructs) and the metadata."""
    abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, t)
                for name, t in templates.items()}
    args = {name: ocp.args.StandardRestore(t) for name, t in abstract.items()}
    args["meta"] = ocp.args.JsonRestore()
    out = self.manager.restore(step, args=ocp.args.Composite(**args))
    return {name: out[name] for name in templates}, out["meta"]

  def set_aside(self, step: int) -> str:
    """Moves a damaged step out of the way (to `checkpoints.damaged/`); returns where it went."""
    target_root = self.directory + ".damaged"
    os.makedirs(target_root, exist_ok=True)
    target, n = os.path.join(target_root, str(step)), 1
    while os.path.exists(target):
      target, n = os.path.join(target_root, f"{step}-{n}"), n + 1
    shutil.move(self.step_dir(step), target)
    self.manager.reload()
    return target

  def restore_latest(self, templates: dict, log=print) -> tuple[int, dict, dict] | None:
    """(step, trees, meta) of the newest intact checkpoint, None if there is none at all.

    Damaged steps are set aside and reported through `log`; CheckpointError if every one is.
    """
    steps = self.steps()
    if not steps:
      return None
    damaged = []
    for step in steps:
      problem = check_manifest(self.step_dir(step))
      if problem is None:
        try:
          trees, meta = self.restore(step, templates)
          return step, trees, meta
        except Exception as e:  # noqa: BLE001  (any reader error: this step is unusable)
          problem = f"unreadable ({type(e).__name__})"
      where = self.set_aside(step)
      damaged.append(step)
      log(f"checkpoint step {step} is damaged ({problem}); moved to {where}, falling back to an "
          "earlier one")
    raise CheckpointError(f"no intact checkpoint in {self.directory} (damaged steps {damaged} "
                          "were moved aside); start the run again without --resume.")

  def close(self) -> None:
    self.manager.close()
