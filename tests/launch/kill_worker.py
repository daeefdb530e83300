"""A few-shot run that kills itself with SIGKILL at a chosen point (for tests/launch/fault_test.py).

  python -m tests.launch.kill_worker CONFIG.json POINT N

POINT: 'learn' (before the N-th update), 'manifest' (the N-th checkpoint is written by Orbax but
its checksum manifest is not) or 'log' (half of the N-th metrics line is written).
"""
import json
import os
import signal
import sys

from hpprompt.agent import agent as agent_lib
from hpprompt.launch import fewshot
from hpprompt.training import checkpoint
from hpprompt.training import run as run_lib


def _kill():
  sys.stdout.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def _at_call(owner, name, n, before):
  original = getattr(owner, name)
  calls = {"n": 0}

  def wrapped(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == n:
      before(*args, **kwargs)
      _kill()
    return original(*args, **kwargs)
  setattr(owner, name, wrapped)


def _half_line(run, step, metrics):
  with open(run.metrics_path, "a") as f:
    f.write(json.dumps({"step": step, **run_lib._jsonable(metrics)})[:40])  # noqa: SLF001


def main(config_path: str, point: str, n: str) -> None:
  with open(config_path) as f:
    cfg = fewshot.FewShotConfig(**json.load(f))
  owner, name, before = {"learn": (agent_lib.PromptAgent, "learn", lambda *a, **k: None),
                         "manifest": (checkpoint, "write_manifest", lambda *a, **k: None),
                         "log": (run_lib.Run, "log", _half_line)}[point]
  _at_call(owner, name, int(n), before)
  fewshot.run(cfg)


if __name__ == "__main__":
  main(*sys.argv[1:4])
