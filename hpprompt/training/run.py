"""Run bookkeeping shared by every launcher: config, metrics, progress line, checkpoints, prompts.

A run directory holds `config.json` (everything needed to reproduce it), `metrics.jsonl` (one JSON
record per logged step), `checkpoints/` (Orbax), `prompts.csv` (best prompts by validation score)
and `results.json` (final evaluation). Resuming truncates `metrics.jsonl` to the restored step, so a
resumed run's files equal an uninterrupted run's.

A run is identified by the `run_id` in its config.json (also stored in every checkpoint), not by its
path: a moved or copied directory resumes. A directory without a finished checkpoint is a run that
died early and is reused by the next run; `--resume` needs a checkpoint. Restoring checks each
checkpoint's checksums and falls back to the newest intact one (`checkpoint.py`). Metrics are strict
JSON: NaN and infinities are written as null, and `check_finite` stops a run whose training
quantities stop being finite.

One process at a time uses a run directory: `check_workdir(..., lock=True)` (the launchers, before
any expensive work) and `Run` hold it through `run.lock` (`lock.py`) until `finish` or the end of
the process. Files are written through `writers.write_file` / `append_line`, so a symbolic link
planted in a run directory is never followed, and a run directory holding a link to a file is
refused. A full disk stops the run in one line naming the last good checkpoint.
"""
import contextlib
import csv
import errno
import io
import json
import os
import signal
import sys
import threading
import time
import uuid


from hpprompt.training import lock as lock_lib
from hpprompt.training.checkpoint import CheckpointError
from hpprompt.training.checkpoint import Checkpointer
from hpprompt.training.checkpoint import SaveError
from hpprompt.training.finite import NonFiniteError  # noqa: F401  (public: run.NonFiniteError)
from hpprompt.training.finite import jsonable as _jsonable
from hpprompt.training.finite import all_finite  # noqa: F401  (public)
from hpprompt.training.finite import check_finite  # noqa: F401  (public)
from hpprompt.training.sharding import is_main_process
from hpprompt.training.sharding import sync_processes
from hpprompt.training.writers import TensorBoardWriter
from hpprompt.training.writers import append_line
from hpprompt.training.writers import check_no_file_links
from hpprompt.training.writers import write_file


class BestPrompts:
  """The top prompts by validation score (ties: the earlier one stays first)."""

  def __init__(self, keep: int = 10, records: list | None = None):
    self.keep = keep
    self.records: list[dict] = list(records or [])

  def add(self, prompt: str, score: float, step: int, **extra) -> bool:
    """Adds a prompt's validation score; True if it is the new best."""
    known = next((r for r in self.records if r["prompt"] == prompt), None)
    if known is not None and known["score"] >= score:
      return False
    if known is not None:
      self.records.remove(known)
    best = self.best
    self.records.append({"prompt": prompt, "score": float(score), "step": int(step), **extra})
    self.records.sort(key=lambda r: (-r["score"], r["step"]))
    del self.records[self.keep:]
    return best is None or score > best["score"]

  @property
  def best(self) -> dict | None:
    return self.records[0] if self.records else None

  def write_csv(self, path: str) -> None:
    f = io.StringIO(newline="")
    w = csv.writer(f)
    ppl = bool(self.records) and all("perplexity" in r for r in self.records)
    w.writerow(["rank", "prompt", "score", "step"] + (["perplexity"] if ppl else []))
    for i, r in enumerate(self.records, 1):
      row = [i, r["prompt"], f"{r['score']:.6f}", r["step"]]
      w.writerow(row + ([f"{r['perplexity']:.2f}"] if ppl else []))
    write_file(path, f.getvalue())


class RunError(ValueError):
  """A run directory that cannot be used as asked; `flag` is the setting to change."""

  def __init__(self, flag: str, message: str):
    super().__init__(message)
    self.flag = flag


class DiskFullError(ValueError):
  """The disk filled up during a run (the last good checkpoint is kept)."""


# Config keys that may differ between a run and its --resume: a moved or copied run directory, a
# relative path or a trailing slash, more steps.
_RESUME_FREE = ("resume", "steps", "workdir", "run_id", "tensorboard")


def saved_steps(workdir: str) -> list[int]:
  """Checkpoint steps present in a run directory (finished saves only), newest first."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted((int(n) for n in os.listdir(directory) if n.isdigit()), reverse=True)


def check_workdir(workdir: str, resume: bool, steps: int | None = None, *,
                  lock: bool = False) -> None:
  """RunError if `workdir` cannot hold this run (checked before any expensive work).

  With `lock`, this process then holds `workdir` (`run.lock`; RunError naming the process that
  holds it otherwise) and a symbolic link to a file in it is refused. `steps` below the steps a
  resumed run has done is refused (the run's files would be rewritten for fewer steps)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise RunError("workdir", f"{workdir} is a file, not a directory; choose another --workdir.")
  parent = os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise RunError("workdir", f"{parent} is a file, so {workdir} cannot be created; choose "
                   "another --workdir.")
  where = workdir if os.path.isdir(workdir) else parent
  if not os.access(where, os.W_OK | os.X_OK):
    raise RunError("workdir", f"{where} is not a writable directory; choose another --workdir.")
  fresh = lock and not lock_lib.holds(workdir)
  if fresh:
    try:
      held = lock_lib.acquire(workdir)
    except lock_lib.LockedError as e:
      raise RunError("workdir", str(e)) from e
    if held.took_over:
      print(f"note: {workdir} was locked by {lock_lib.describe(held.took_over)}, which is no "
            "longer running; taking it over.", flush=True)
  try:
    _check_contents(workdir, resume, steps, links=lock)
  except BaseException:
    if fresh:
      lock_lib.release(workdir)
    raise


def _check_contents(workdir: str, resume: bool, steps: int | None, links: bool) -> None:
  if links:
    try:
      check_no_file_links(workdir)
    except ValueError as e:
      raise RunError("workdir", str(e)) from e
  saved = saved_steps(workdir)
  if resume and not saved:
    raise RunError("resume", f"no checkpoint in {workdir} to resume from; run without --resume "
                   "to start it.")
  if not resume and saved:
    raise RunError("workdir", f"{workdir} already holds a run (checkpoint step {saved[0]}); pass "
                   "--resume to continue it or choose another --workdir.")
  if resume and steps is not None and steps < saved[0]:
    raise RunError("steps", f"{steps} is fewer than the {saved[0]} steps the run in {workdir} has "
                   f"done; pass --steps={saved[0]} or more to continue it.")


class Run:
  """One training run in `workdir`."""

  def __init__(self, workdir: str, config: dict, *, total_steps: int, resume: bool,
               checkpoint_every: int, keep_prompts: int = 10, stream=None,
               tensorboard: bool = False):
    self.workdir = workdir
    self.total_steps = total_steps
    self.checkpoint_every = checkpoint_every
    self.stream = stream or sys.stdout
    self.main = is_main_process()     # on several hosts only process 0 writes files and prints
    check_workdir(workdir, resume, total_steps, lock=self.main)
    self.config = _jsonable(config)
    config_path = os.path.join(workdir, "config.json")
    self.metrics_path = os.path.join(workdir, "metrics.jsonl")
    if resume:
      try:
        with open(config_path) as f:
          old = json.load(f)
      except (OSError, ValueError) as e:
        raise RunError("resume", f"{config_path} is missing or unreadable ({type(e).__name__}); "
                       "it cannot be resumed.") from e
      changed = {k for k in set(old) | set(self.config)
                 if old.get(k) != self.config.get(k) and k not in _RESUME_FREE}
      if changed:
        raise RunError("resume", f"a different configuration ({sorted(changed)}) than the run in "
                       f"{workdir}; use a new --workdir.")
      self.config["run_id"] = old.get("run_id") or uuid.uuid4().hex
    else:
      # A directory without a checkpoint is a run that died before its first save: start afresh.
      self.config["run_id"] = uuid.uuid4().hex
      if self.main:
        for name in ("metrics.jsonl", "prompts.csv", "results.json"):
          if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))
    self.run_id = self.config["run_id"]
    if self.main:
      os.makedirs(workdir, exist_ok=True)
      _write_json(config_path, self.config)
    self.tensorboard = TensorBoardWriter(workdir) if tensorboard and self.main else None
    sync_processes("run-init")         # every process checked the workdir before any creates it
    if not self.main and os.path.exists(config_path):   # one run id on every host (shared disk)
      with open(config_path) as f:
        self.run_id = self.config["run_id"] = json.load(f).get("run_id", self.run_id)
    self.checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), write=self.main)
    self.prompts = BestPrompts(keep_prompts)
    self.start_step = 0
    self.saved_step = None
    self.meta: dict = {}           # the restored checkpoint's metadata
    self._t0 = time.time()
    self._first_step_time = None
    self._seconds_before = 0.0     # training time of the checkpointed steps of earlier processes
    self._segment_start = time.time()

  # ---- checkpoints -------------------------------------------------------------------------------

  def restore(self, templates: dict) -> dict | None:
    """Restores the newest intact checkpoint (None if there is none); sets `start_step`, prompts."""
    found = self.checkpointer.restore_latest(templates, log=self.print)
    self._segment_start = time.time()     # training time counts from here (loading excluded)
    if found is None:
      return None
    step, trees, meta = found
    if meta.get("run_id", self.run_id) != self.run_id:
      raise CheckpointError(f"checkpoint step {step} in {self.checkpointer.directory} belongs to "
                            f"another run (id {meta.get('run_id')}, config.json says "
                            f"{self.run_id}); use that run's directory.")
    self.meta = meta
    self._seconds_before = float(meta.get("train_seconds", 0.0))
    self.start_step = self.saved_step = int(meta["step"])
    self.prompts = BestPrompts(self.prompts.keep, meta.get("prompts"))
    self._truncate_metrics(self.start_step)
    self.print(f"resumed from step {self.start_step} ({self.checkpointer.directory})")
    return trees

  def save(self, step: int, trees: dict, extra: dict | None = None) -> None:
    if step == self.saved_step:   # e.g. Ctrl-C on a checkpoint step: already saved
      return
    meta = {"step": step, "run_id": self.run_id, "prompts": self.prompts.records,
            "train_seconds": self.train_seconds(), **(extra or {})}
    try:
      self.checkpointer.save(step, trees, meta)
    except SaveError as e:
      raise SaveError(f"{e}{self._kept()}") from e
    self.saved_step = step

  def _kept(self) -> str:
    if self.saved_step is None:
      return "; no checkpoint was kept: run it again once the cause is fixed"
    return (f"; the last good checkpoint is step {self.saved_step}: --resume once the cause is "
            "fixed")

  @contextlib.contextmanager
  def _disk(self, path: str):
    """A full disk while writing `path`: DiskFullError naming it and the last good checkpoint."""
    try:
      yield
    except OSError as e:
      if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        raise
      raise DiskFullError(f"no space left on device writing {path}{self._kept()}") from e

  def train_seconds(self) -> float:
    """Seconds of training so far, over every process that resumed this run: the time up to the
    restored checkpoint (steps redone after a crash count once) plus this process's since
    `restore`."""
    return self._seconds_before + time.time() - self._segment_start

  def maybe_save(self, step: int, trees: dict, extra: dict | None = None) -> None:
    if step % self.checkpoint_every == 0 or step == self.total_steps:
      self.save(step, trees, extra)

  # ---- metrics and progress ----------------------------------------------------------------------

  def _truncate_metrics(self, step: int) -> None:
    if not self.main or not os.path.exists(self.metrics_path):
      return
    keep = []
    with open(self.metrics_path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:   # a line cut short by a killed process
          continue
        if record.get("step", 0) <= step:
          keep.append(line)
    with self._disk(self.metrics_path):
      write_file(self.metrics_path, "".join(keep))

  def log(self, step: int, metrics: dict) -> None:
    if not self.main:
      return
    record = {"step": step, **_jsonable(metrics)}
    with self._disk(self.metrics_path):
      append_line(self.metrics_path, json.dumps(record, allow_nan=False))
    if self.tensorboard is not None:
      self.tensorboard.write(step, record)

  def eta(self, step: int) -> str:
    if self._first_step_time is None:
      self._first_step_time = (time.time(), step)
      return "?"
    t0, s0 = self._first_step_time
    if step <= s0:
      return "?"
    left = (time.time() - t0) / (step - s0) * (self.total_steps - step)
    return time.strftime("%H:%M:%S", time.gmtime(left))

  def progress(self, step: int, **fields) -> None:
    best = self.prompts.best
    parts = [f"step {step}/{self.total_steps}"]
    parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()]
    if best is not None:
      parts.append(f"best val {best['score']:.4f} {best['prompt']!r}")
    parts.append(f"ETA {self.eta(step)}")
    self.print(" | ".join(parts))

  def print(self, message: str) -> None:
    if self.main:
      print(message, file=self.stream, flush=True)

  def write_results(self, results: dict) -> None:
    """prompts.csv and results.json (each written whole, then renamed into place)."""
    if self.main:
      with self._disk(self.workdir):
        self.prompts.write_csv(os.path.join(self.workdir, "prompts.csv"))
        _write_json(os.path.join(self.workdir, "results.json"), _jsonable(results))

  def finish(self, results: dict) -> None:
    """Writes the results, closes the writers and releases the run directory."""
    self.write_results(results)
    if self.main and self.tensorboard is not None:
      self.tensorboard.close()
    self.checkpointer.close()
    lock_lib.release(self.workdir)


def _write_json(path: str, value) -> None:
  write_file(path, json.dumps(value, indent=2, sort_keys=path.endswith("config.json"),
                              allow_nan=False))


class Interrupted(Exception):
  """Raised after Ctrl-C once the last finished step has been saved."""


@contextlib.contextmanager
def stop_on_sigint(run: "Run"):
  """First Ctrl-C: finish the current step, save, stop (yields a flag). Second: abort at once."""
  flag = {"stop": False}
  if threading.current_thread() is not threading.main_thread():
    yield flag
    return

  def handler(signum, frame):
    if flag["stop"]:
      raise KeyboardInterrupt
    flag["stop"] = True
    run.print("Ctrl-C: stopping after this step (press again to abort without saving it)")

  previous = signal.signal(signal.SIGINT, handler)
  try:
    yield flag
  finally:
    signal.signal(signal.SIGINT, previous)
