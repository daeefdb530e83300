"""Run bookkeeping shared by every launcher: config, metrics file, progress line, checkpoints, prompts.

A run directory holds `config.json` (everything needed to reproduce it), `metrics.jsonl` (one JSON
record per logged step), `checkpoints/` (Orbax), `prompts.csv` (best prompts by validation score) and
`results.json` (final evaluation). Resuming truncates `metrics.jsonl` to the restored step, so a resumed
run's files equal an uninterrupted run's.
"""
import contextlib
import csv
import dataclasses
import json
import os
import signal
import sys
import threading
import time

from hpprompt.training.checkpoint import Checkpointer
from hpprompt.training.sharding import is_main_process
from hpprompt.training.sharding import sync_processes


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
    with open(path, "w", newline="") as f:
      w = csv.writer(f)
      ppl = bool(self.records) and all("perplexity" in r for r in self.records)
      w.writerow(["rank", "prompt", "score", "step"] + (["perplexity"] if ppl else []))
      for i, r in enumerate(self.records, 1):
        row = [i, r["prompt"], f"{r['score']:.6f}", r["step"]]
        w.writerow(row + ([f"{r['perplexity']:.2f}"] if ppl else []))


def _jsonable(value):
  if dataclasses.is_dataclass(value):
    return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (str, int, float, bool)) or value is None:
    return value
  try:
    return float(value)
  except (TypeError, ValueError):
    return str(value)


class Run:
  """One training run in `workdir`."""

  def __init__(self, workdir: str, config: dict, *, total_steps: int, resume: bool,
               checkpoint_every: int, keep_prompts: int = 10, stream=None):
    self.workdir = workdir
    self.total_steps = total_steps
    self.checkpoint_every = checkpoint_every
    self.stream = stream or sys.stdout
    os.makedirs(workdir, exist_ok=True)
    self.config = _jsonable(config)
    config_path = os.path.join(workdir, "config.json")
    if resume and os.path.exists(config_path):
      with open(config_path) as f:
        old = json.load(f)
      changed = {k for k in set(old) | set(self.config)
                 if old.get(k) != self.config.get(k) and k not in ("resume", "steps")}
      if changed:
        raise ValueError(f"--resume with a different configuration ({sorted(changed)}) than the run "
                         f"in {workdir}; use a new --workdir.")
    elif not resume and os.path.exists(os.path.join(workdir, "checkpoints")):
      raise ValueError(f"{workdir} already holds a run; pass --resume to continue it or choose "
                       "another --workdir.")
    self.main = is_main_process()     # on several hosts only process 0 writes files and prints
    if self.main:
      with open(config_path, "w") as f:
        json.dump(self.config, f, indent=2, sort_keys=True)
    self.metrics_path = os.path.join(workdir, "metrics.jsonl")
    sync_processes("run-init")         # every process checked the workdir before any creates it
    self.checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    self.prompts = BestPrompts(keep_prompts)
    self.start_step = 0
    self.saved_step = None
    self.meta: dict = {}           # the restored checkpoint's metadata
    self._t0 = time.time()
    self._first_step_time = None

  # ---- checkpoints -------------------------------------------------------------------------------

  def restore(self, templates: dict) -> dict | None:
    """Restores the latest checkpoint (None if there is none); sets `start_step` and the prompts."""
    step = self.checkpointer.latest_step()
    if step is None:
      return None
    trees, meta = self.checkpointer.restore(step, templates)
    self.meta = meta
    self.start_step = self.saved_step = int(meta["step"])
    self.prompts = BestPrompts(self.prompts.keep, meta.get("prompts"))
    self._truncate_metrics(self.start_step)
    self.print(f"resumed from step {self.start_step} ({self.checkpointer.directory})")
    return trees

  def save(self, step: int, trees: dict, extra: dict | None = None) -> None:
    if step == self.saved_step:   # e.g. Ctrl-C on a checkpoint step: already saved
      return
    meta = {"step": step, "prompts": self.prompts.records, **(extra or {})}
    self.checkpointer.save(step, trees, meta)
    self.saved_step = step

  def maybe_save(self, step: int, trees: dict, extra: dict | None = None) -> None:
    if step % self.checkpoint_every == 0 or step == self.total_steps:
      self.save(step, trees, extra)

  # ---- metrics and progress ------------------------------------------------------------------------

  def _truncate_metrics(self, step: int) -> None:
    if not self.main or not os.path.exists(self.metrics_path):
      return
    with open(self.metrics_path) as f:
      keep = [line for line in f if json.loads(line).get("step", 0) <= step]
    with open(self.metrics_path, "w") as f:
      f.writelines(keep)

  def log(self, step: int, metrics: dict) -> None:
    if not self.main:
      return
    record = {"step": step, **_jsonable(metrics)}
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(record) + "\n")

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

  def finish(self, results: dict) -> None:
    if self.main:
      self.prompts.write_csv(os.path.join(self.workdir, "prompts.csv"))
      with open(os.path.join(self.workdir, "results.json"), "w") as f:
        json.dump(_jsonable(results), f, indent=2)
    self.checkpointer.close()


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
