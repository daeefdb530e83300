"""Prints, as JSON, what `--paper` resolves to in one launcher for several methods.

  python -m tests.launch.paper_dump experiments/style_transfer.py pin rlprompt

One process per launcher (absl flags are defined at import). For each method: the launcher's config
(`config_from_flags()` after parsing `--paper --method=M`) with its resolved agent settings (None
for PEZ), and the config without `--paper` (what `--paper` changes).
"""
import dataclasses
import importlib.util
import json
import sys

from absl import flags


def main(launcher: str, methods: list[str]) -> None:
  from hpprompt.launch import cli  # noqa: PLC0415
  spec = importlib.util.spec_from_file_location("launcher_under_test", launcher)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  out = {}
  for method in methods:
    configs = []
    for paper in (["--paper"], []):
      flags.FLAGS.unparse_flags()
      cli.parse_flags([launcher, *paper, f"--method={method}"])
      configs.append(module.config_from_flags())
    logic = sys.modules[type(configs[0]).__module__]
    agent = None if method == "pez" else dataclasses.asdict(logic.agent_config(configs[0]))
    out[method] = {"paper": dataclasses.asdict(configs[0]), "agent": agent,
                   "cpu": dataclasses.asdict(configs[1])}
  print(json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
