"""The report launcher's logic: run directories (comma-separated, globs allowed) -> report files.

`run(ReportConfig(...))` is what `experiments/report.py` calls. A path that is not a run directory
(no config.json / metrics.jsonl) is a `cli.FlagError` naming `--runs`.
"""
import dataclasses
import glob

from hpprompt.launch import cli
from hpprompt.launch import validate
from hpprompt.report import report
from hpprompt.report import runs as runs_lib


@dataclasses.dataclass(frozen=True)
class ReportConfig:
  runs: tuple[str, ...]
  out: str = "report"
  readme: str | None = None       # also replace this file's text between the report markers


def expand(patterns) -> list[str]:
  """Run directories from paths and glob patterns (a pattern must match something)."""
  paths = []
  for pattern in patterns:
    if glob.has_magic(pattern):
      matches = sorted(glob.glob(pattern))
      if not matches:
        raise cli.FlagError("runs", f"{pattern!r} matches nothing.")
      paths += matches
    else:
      paths.append(pattern)
  if not paths:
    raise cli.FlagError("runs", "give at least one run directory.")
  return list(dict.fromkeys(paths))


def run(cfg: ReportConfig) -> list[report.Section]:
  validate.directory(cfg.out, "out")
  paths = expand(cfg.runs)
  runs = ",".join(cfg.runs)
  command = ("python experiments/report.py --runs=" + (f"'{runs}'" if glob.has_magic(runs) else runs)
             + f" --out={cfg.out}")
  if cfg.readme:
    command += f" --readme={cfg.readme}"
  try:
    sections = report.write_report(paths, cfg.out, command=command)
  except runs_lib.NotARunError as e:
    raise cli.FlagError("runs", str(e)) from e
  if cfg.readme:
    with cli.flag("readme"):
      report.update_readme(cfg.readme, sections, cfg.out, command=command)
  return sections
