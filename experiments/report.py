"""A markdown report with PNG figures of finished (or running) runs, grouped by task and method.

  python experiments/report.py --runs=runs/pin_s0,runs/pin_s1,runs/rlprompt --out=report
  python experiments/report.py --runs='docs/grid/*/*' --out=docs/results --readme=README.md

Logic lives in hpprompt.launch.report (tables, figures: hpprompt.report).
"""
import sys

from absl import app
from absl import flags

from hpprompt.launch import cli
from hpprompt.launch import report

flags.DEFINE_list("runs", None, "Run directories (comma-separated; glob patterns allowed).")
flags.DEFINE_string("out", "report", "Output directory (report.md, figures, figures.json).")
flags.DEFINE_string("readme", None, "Also regenerate this markdown file's text between "
                    "'<!-- report:begin -->' and '<!-- report:end -->'.")
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:   # e.g. an unquoted glob that the shell expanded into several arguments
    print(f"error: --runs: unexpected arguments {argv[1:]}; separate run directories with commas "
          "and quote glob patterns.", file=sys.stderr)
    sys.exit(2)
  cfg = report.ReportConfig(runs=tuple(FLAGS.runs or ()), out=FLAGS.out, readme=FLAGS.readme)
  sections = cli.run_main(report.run, cfg)
  for s in sections:
    runs = sum(len(g) for g in s.groups.values())
    print(f"{s.task}: {runs} runs, {len(s.groups)} methods, {len(s.figures)} figures")
  print(f"wrote {FLAGS.out}/report.md")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
