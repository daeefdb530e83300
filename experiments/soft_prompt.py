"""Continuous-prompt baselines: soft prompt tuning, InfoPrompt, PEZ (hard prompts).

  python experiments/soft_prompt.py --method=soft                   # SmolLM2-135M, SST-2 16-shot
  python experiments/soft_prompt.py --method=infoprompt --variational_head --prompt_generator
  python experiments/soft_prompt.py --method=pez --prompt_length=5 --steps=60
  python experiments/soft_prompt.py --dataset=glue/rte --k_per_class=32 --task_lm=roberta-large
  python experiments/soft_prompt.py --workdir=runs/a --resume       # continue after Ctrl-C

Logic lives in hpprompt.launch.soft_prompt; see `--helpfull` for every flag.
"""
import dataclasses

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import paper
from hpprompt.launch import run_flags
from hpprompt.launch import soft_prompt

D = soft_prompt.BaselineConfig()
flags.DEFINE_string("method", D.method, "soft (Lester et al.), infoprompt (Wu et al.) or pez "
                    "(Wen et al.).")
flags.DEFINE_string("dataset", D.dataset, "Few-shot set (sst-2, mr, ...) or tfds set (glue/sst2, "
                    "glue/rte, glue/mrpc, glue/cola, ...), your own data (a CSV/TSV/JSONL file "
                    "or folder) or tfds:NAME.")
flags.DEFINE_integer("dataset_seed", D.dataset_seed, "Few-shot split 0-4; tfds, --shots: sampling "
                     "seed.")
flags.DEFINE_string("data_dir", None, "Few-shot data root (default: bundled) or tfds data_dir.")
flags.DEFINE_integer("k_per_class", None, "tfds sets: train (and dev) examples per class.")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_integer("prompt_length", D.prompt_length, "Prompt vectors / tokens L.")
flags.DEFINE_enum("init", D.init, ["uniform", "vocab", "class"],
                  "Prompt initialisation: U[-init_scale, init_scale], sampled vocabulary rows, or "
                  "class-label words.")
flags.DEFINE_float("init_scale", None, "uniform init range (default 0.5).")
flags.DEFINE_integer("batch_size", D.batch_size, "Examples per step (capped at the train set).")
flags.DEFINE_float("learning_rate", None, "AdamW learning rate (default: the method's).")
flags.DEFINE_float("weight_decay", None, "AdamW weight decay (default: the method's).")
flags.DEFINE_bool("variational_head", None, "InfoPrompt: Gaussian-bottleneck class head.")
flags.DEFINE_bool("prompt_generator", None, "InfoPrompt: instance-dependent prompt generator.")
flags.DEFINE_string("logp_floor", None, "InfoPrompt: InfoNCE log-prob floor (default -2; 'none').")
flags.DEFINE_float("gamma", None, "InfoPrompt: head-loss weight (default 0.1).")
flags.DEFINE_float("beta", None, "InfoPrompt: representation-loss weight (default 0.2).")
flags.DEFINE_float("kl_weight", None, "InfoPrompt: KL weight (default 0.1).")
flags.DEFINE_float("warmup_fraction", None, "Linear lr warm-up over this fraction of the steps "
                   "(InfoPrompt's code: 0.06).")
flags.DEFINE_bool("linear_decay", None,
                  "Linear lr decay to 0 at the last step (InfoPrompt's code).")
flags.DEFINE_integer("epochs", None, "Train for this many epochs (steps = epochs x batches).")
flags.DEFINE_bool("paper", False, "The paper's set-up (hpprompt/launch/paper.py): RoBERTa-large, "
                  "its template, prompt length, batch, optimiser, steps; InfoPrompt's released "
                  "architecture. Flags given explicitly still win.")
flags.DEFINE_float("target_train_acc", D.target_train_acc, "Report the first step reaching it.")
run_flags.define(D)
run_flags.define_data()
FLAGS = flags.FLAGS

_OPTIONS = ("init_scale", "weight_decay", "variational_head", "prompt_generator", "gamma", "beta",
            "kl_weight", "warmup_fraction", "linear_decay")


def config_from_flags() -> soft_prompt.BaselineConfig:
  options = {name: getattr(FLAGS, name) for name in _OPTIONS if getattr(FLAGS, name) is not None}
  if FLAGS.logp_floor is not None:
    with cli.flag("logp_floor"):
      options["logp_floor"] = (None if FLAGS.logp_floor.lower() == "none"
                               else float(FLAGS.logp_floor))
  cfg = dataclasses.replace(
      D, method=FLAGS.method, epochs=FLAGS.epochs, dataset=FLAGS.dataset,
      dataset_seed=FLAGS.dataset_seed,
      data_dir=FLAGS.data_dir, k_per_class=FLAGS.k_per_class, task_lm=FLAGS.task_lm,
      prompt_length=FLAGS.prompt_length, init=FLAGS.init, learning_rate=FLAGS.learning_rate,
      options=options, batch_size=FLAGS.batch_size, target_train_acc=FLAGS.target_train_acc,
      **run_flags.values(), **run_flags.data_values())
  if not FLAGS.paper:
    return cfg
  explicit = {name for name in FLAGS if FLAGS[name].present}
  return paper.apply(cfg, explicit)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli.run_main(lambda: soft_prompt.run(config_from_flags()))   # one line per error; Ctrl-C: 130


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
