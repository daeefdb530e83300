"""Few-shot text classification with PIN or RLPrompt.

  python experiments/fewshot_classification.py                       # SmolLM2-135M, SST-2, CPU-sized
  python experiments/fewshot_classification.py --method=rlprompt --dataset=agnews --steps=1000
  python experiments/fewshot_classification.py --workdir=runs/a --resume   # continue after Ctrl-C

Logic lives in hpprompt.launch.fewshot; see `--helpfull` for every flag.
"""
import dataclasses

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import paper
from hpprompt.launch import run_flags
from hpprompt.launch import fewshot
from hpprompt.training import sharding

D = fewshot.FewShotConfig()
flags.DEFINE_string("method", D.method, "Agent preset: pin, rlprompt, pin-td, pin-v2v3, "
                    "pin-no-fluency, rlprompt-fluency, rlprompt-rb.")
flags.DEFINE_string("dataset", D.dataset, "Few-shot data set (sst-2, mr, cr, agnews, ...), your "
                    "own data (a CSV/TSV/JSONL file or folder) or tfds:NAME.")
flags.DEFINE_integer("dataset_seed", D.dataset_seed, "Few-shot split 0-4 (16-100, 16-13, ...); "
                     "your own data: the --shots draw.")
flags.DEFINE_string("data_dir", None, "Few-shot data root (default: the bundled copy).")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_string("policy_lm", D.policy_lm, "Policy LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_bool("calibrate", None, "Contextual calibration of the verbalizer probabilities "
                  "(default: on, off with --paper).")
flags.DEFINE_bool("paper", False, "The paper's set-up (hpprompt/launch/paper.py): its policy and "
                  "task LMs, steps, validation cadence, selection, the preset without CPU "
                  "overrides, no calibration. Flags given explicitly still win.")
flags.DEFINE_enum("selection", None, ["accuracy", "reward"], "Best prompt by dev accuracy or mean "
                  "dev reward (default: the preset's; PIN presets: reward).")
flags.DEFINE_bool("truncate", False, "Truncate over-long masked-LM inputs as RLPrompt does (right "
                  "in training, left in evaluation) instead of stopping.")
flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator (multi-host).")
flags.DEFINE_integer("num_processes", None, "jax.distributed: number of processes.")
flags.DEFINE_integer("process_id", None, "jax.distributed: this process's id.")
run_flags.define(D)
run_flags.define_data()
run_flags.define_agent()
FLAGS = flags.FLAGS

def config_from_flags() -> fewshot.FewShotConfig:
  agent = run_flags.agent_values({} if FLAGS.paper else fewshot.CPU_AGENT_OVERRIDES,
                                 method=FLAGS.method)
  cfg = dataclasses.replace(
      D, method=FLAGS.method, dataset=FLAGS.dataset, dataset_seed=FLAGS.dataset_seed,
      data_dir=FLAGS.data_dir, task_lm=FLAGS.task_lm, policy_lm=FLAGS.policy_lm,
      calibrate=D.calibrate if FLAGS.calibrate is None else FLAGS.calibrate,
      selection=FLAGS.selection, truncate=FLAGS.truncate,
      agent=agent, source_token=FLAGS.source_token, **run_flags.values(),
      **run_flags.data_values())
  if not FLAGS.paper:
    return cfg
  explicit = {name for name in FLAGS if FLAGS[name].present}
  return paper.apply(cfg, explicit)


def _main():
  with cli.flag("coordinator_address"):
    sharding.init_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  return fewshot.run(config_from_flags())


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli.run_main(_main)       # every error: one line, exit 2 (--debug: traceback); Ctrl-C: 130


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
