"""Helpers shared by the launcher tests (few-shot agent and gradient baselines)."""
import json
import os
import signal


def read_metrics(workdir, drop=()) -> list[dict]:
  """metrics.jsonl of a run, without the keys in `drop` (wall-clock timings differ between runs)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def interrupt_on_call(monkeypatch, cls, name: str, at: int, how: str):
  """Makes the `at`-th call of cls.name send Ctrl-C (how="sigint": the launcher finishes the step
  and saves) or raise KeyboardInterrupt ("keyboard_interrupt": abrupt). Returns an undo function."""
  original = getattr(cls, name)
  calls = {"n": 0}

  def wrapped(self, *args, **kwargs):
    calls["n"] += 1
    if calls["n"] == at:
      if how == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
      else:
        raise KeyboardInterrupt
    return original(self, *args, **kwargs)

  monkeypatch.setattr(cls, name, wrapped)
  return lambda: monkeypatch.setattr(cls, name, original)
