"""Runs one launcher (experiments/*.py) with many command lines in one process, as `app.run` would.

  python -m tests.launch.driver LAUNCHER.py CASES.json RESULTS.json

CASES.json: a list of {"argv": [...], "dir": folder to snapshot}. For each case the flags are reset,
parsed with the launcher's parser (`cli.parse_flags`) and `main` is called with stdout and stderr
captured; RESULTS.json gets the exit code, stderr, and the folder's listing before and after. One
process per launcher saves JAX's start-up for every case (a launcher defines absl flags at import,
so two launchers cannot share a process).
"""
import contextlib
import importlib.util
import io
import json
import os
import sys
import traceback

from absl import flags


def listing(folder: str) -> list:
  """(relative path, size) of everything under folder; None if it does not exist."""
  if not os.path.exists(folder):
    return None
  out = []
  for root, dirs, files in os.walk(folder):
    for name in sorted(dirs) + sorted(files):
      path = os.path.join(root, name)
      out.append([os.path.relpath(path, folder), os.path.getsize(path) if name in files else -1])
  return sorted(out)


def run_case(module, argv: list[str]) -> tuple[object, str, str]:
  from hpprompt.launch import cli  # noqa: PLC0415
  flags.FLAGS.unparse_flags()
  out, err = io.StringIO(), io.StringIO()
  code = 0
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      rest = cli.parse_flags([module.__file__] + argv)
      module.main(rest)
    except SystemExit as e:
      code = e.code
    except BaseException:  # noqa: BLE001  (an escaped exception is what the test reports)
      code = "escaped"
      traceback.print_exc()
  return code, out.getvalue(), err.getvalue()


def main(launcher: str, cases_path: str, results_path: str) -> None:
  spec = importlib.util.spec_from_file_location("launcher_under_test", launcher)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  import jax  # noqa: PLC0415
  jax.devices()          # start-up messages (if any) before the first case
  with open(cases_path) as f:
    cases = json.load(f)
  results = []
  for case in cases:
    before = listing(case["dir"])
    code, out, err = run_case(module, case["argv"])
    results.append({"code": code, "stdout": out, "stderr": err, "before": before,
                    "after": listing(case["dir"])})
  with open(results_path, "w") as f:
    json.dump(results, f)


if __name__ == "__main__":
  main(*sys.argv[1:4])
