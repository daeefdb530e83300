"""A textual-inversion run that kills itself with SIGKILL before the N-th agent update (for
tests/textual_inversion/kill_test.py).

  python -m tests.textual_inversion.kill_worker CONFIG.json N
"""
import json
import sys

from hpprompt.agent import agent as agent_lib
from hpprompt.launch import textual_inversion as ti
from tests.launch.kill_worker import _at_call


def main(config_path: str, n: str) -> None:
  with open(config_path) as f:
    cfg = ti.TextualInversionConfig(**json.load(f))
  _at_call(agent_lib.PromptAgent, "learn", int(n), lambda *a, **k: None)
  ti.run(cfg)


if __name__ == "__main__":
  main(*sys.argv[1:3])
