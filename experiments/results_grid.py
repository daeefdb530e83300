"""The results grid: data sets x methods x seeds at the CPU defaults, one resumable command.

  python experiments/results_grid.py --dry_run                       # cells, status, cost estimate
  python experiments/results_grid.py --report_only                   # the report of finished cells
  python experiments/results_grid.py                                 # run (or continue) the grid
  python experiments/results_grid.py --only='sst-2/*_seed0'          # a part of it
  python experiments/results_grid.py --shard=0/4 & ... --shard=3/4   # 4 processes, one OUT
  python experiments/results_grid.py --methods=pin_init              # PIN from the manual prompt

Run the same command again after Ctrl-C or a failure: finished cells are skipped, interrupted ones
resume. Logic lives in hpprompt.orchestration.grid.
"""
from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import run_flags
from hpprompt.orchestration import grid

D = grid.GridConfig()
flags.DEFINE_list("datasets", list(D.datasets), "Few-shot data sets, or your own (CSV/TSV/JSONL "
                  "files or folders, tfds:NAME).")
flags.DEFINE_list("seeds", [str(s) for s in D.seeds], "Seeds (run seed; also the few-shot split "
                  "unless --dataset_seed is given).")
flags.DEFINE_list("methods", list(D.methods), f"Methods, of {list(grid.METHODS)} and "
                  f"{list(grid.EXTRA_METHODS)} (PIN from the manual method's prompt).")
flags.DEFINE_string("out", D.out, "Grid directory: OUT/<dataset>/<method>_seed<k>, OUT/report.")
flags.DEFINE_list("only", [], "Run only cells matching these glob patterns, e.g. 'sst-2/pin_*'.")
flags.DEFINE_string("shard", None, "I/N: run only cells I, I+N, I+2N, ... (0 <= I < N), e.g. "
                    "one Slurm array task or Ray task of N; no report (--report_only after all).")
flags.DEFINE_bool("dry_run", False, "Print the cells, their status and the estimated cost; run "
                  "nothing.")
flags.DEFINE_integer("dataset_seed", None, "Few-shot split of every cell (default: the seed).")
flags.DEFINE_string("data_dir", None, "Few-shot data root (default: the bundled copy).")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM of every method.")
flags.DEFINE_string("policy_lm", D.policy_lm, "Policy LM of PIN and RLPrompt.")
flags.DEFINE_integer("steps", None, "Steps of every trained method (default: each launcher's CPU "
                     "default; RLPrompt's follow PIN's by the fair-budget rule).")
flags.DEFINE_integer("rlprompt_prompts_per_step", None, "RLPrompt prompts per step (its steps "
                     "follow so that it scores as many prompts as PIN).")
flags.DEFINE_bool("report_only", False, "Only write the report of the finished cells (e.g. of "
                  "the committed copy: --out=docs/grid --report_dir=docs/results); run nothing.")
flags.DEFINE_bool("report", True, "Write the report of the finished cells into OUT/report.")
flags.DEFINE_string("readme", None, "Also regenerate this markdown file's report section.")
flags.DEFINE_string("report_dir", None, "Report directory (default: OUT/report).")
run_flags.define_data()
FLAGS = flags.FLAGS


def _seeds(values) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise cli.FlagError("seeds", f"must be integers, got {values}.") from None


def _main():
  cfg = grid.GridConfig(
      datasets=tuple(FLAGS.datasets), seeds=_seeds(FLAGS.seeds), methods=tuple(FLAGS.methods),
      out=FLAGS.out, only=tuple(FLAGS.only), shard=grid.parse_shard(FLAGS.shard),
      dataset_seed=FLAGS.dataset_seed,
      data_dir=FLAGS.data_dir, task_lm=FLAGS.task_lm, policy_lm=FLAGS.policy_lm,
      steps=FLAGS.steps, rlprompt_prompts_per_step=FLAGS.rlprompt_prompts_per_step,
      dry_run=FLAGS.dry_run, report_only=FLAGS.report_only, report=FLAGS.report,
      readme=FLAGS.readme, report_dir=FLAGS.report_dir, **run_flags.data_values())
  outcome = grid.run(cfg)
  if any(o.startswith("failed") for o in outcome.values()):
    raise SystemExit(1)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli.run_main(_main)       # every error: one line, exit 2 (--debug: traceback); Ctrl-C: 130


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
