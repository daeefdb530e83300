"""Runs a launcher script as `python SCRIPT FLAGS...` does, but waits at its first metrics record
until a file appears (for tests/launch/run_dir_test.py: a run that is surely still running).

  python -m tests.launch.hold_worker GO_FILE SCRIPT [FLAGS...]

Creates GO_FILE.waiting when it starts to wait.
"""
import os
import runpy
import sys
import time

from hpprompt.training import run as run_lib


def main(go: str, script: str, *argv: str) -> None:
  original = run_lib.Run.log

  def log(self, step, metrics):
    if not os.path.exists(go + ".waiting"):
      open(go + ".waiting", "w").close()
      while not os.path.exists(go):
        time.sleep(0.05)
    return original(self, step, metrics)

  run_lib.Run.log = log
  sys.argv = [script, *argv]
  runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
  main(*sys.argv[1:])
