"""Text style transfer (Yelp sentiment, Shakespeare) with PIN or RLPrompt.

  python experiments/style_transfer.py                       # PIN, SmolLM2, Yelp 0to1, CPU-sized
  python experiments/style_transfer.py --method=rlprompt --direction=1to0
  python experiments/style_transfer.py --task=shakespeare --dataset_seed=1
  python experiments/style_transfer.py --paper                           # the papers' settings
  python experiments/style_transfer.py --workdir=runs/a --resume         # continue after Ctrl-C

Logic lives in hpprompt.launch.style_transfer; see `--helpfull` for every flag.
"""
import dataclasses
import sys

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import paper
from hpprompt.launch import run_flags
from hpprompt.launch import style_transfer
from hpprompt.tasks import generation

D = style_transfer.StyleTransferConfig()
flags.DEFINE_string("method", D.method, "Agent preset: pin, rlprompt, pin-td, rlprompt-rb, ...")
flags.DEFINE_string("task", D.task, "yelp or shakespeare.")
flags.DEFINE_string("direction", D.direction, "0to1 or 1to0 (Yelp: negative -> positive is 0to1).")
flags.DEFINE_integer("dataset_seed", D.dataset_seed,
                     "Shakespeare split 0-2 (100-100, 100-13, 100-21).")
flags.DEFINE_string("train_file", None, "Training sentences, one per line (default: bundled pool).")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM (generates): hub name, local HF dir, 'smollm2'.")
flags.DEFINE_string("policy_lm", D.policy_lm, "Policy LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_string("content_lm", None, "BERTScore encoder (default: the task LM).")
flags.DEFINE_integer("content_layer", D.content_layer, "BERTScore layer of the content encoder.")
flags.DEFINE_bool("content_baseline", D.content_baseline, "Rescale BERTScore with a baseline.")
flags.DEFINE_string("style_classifier", None, "HF sequence classifier (default: train a head on "
                    "task-LM features over the training pool).")
flags.DEFINE_integer("classifier_pool", D.classifier_pool, "Sentences per style for that head.")
flags.DEFINE_string("fluency_classifier", None, "HF acceptability classifier (label 0 = ok).")
flags.DEFINE_string("ppl_lm", None, "Perplexity LM (default: the task LM).")
flags.DEFINE_string("cache_dir", None, "Classifier / baseline cache (default: the workdir).")
flags.DEFINE_integer("num_samples", D.num_samples, "Samples per bootstrap (paper 32).")
flags.DEFINE_integer("num_bootstraps", D.num_bootstraps, "Bootstraps (paper 4).")
flags.DEFINE_integer("top_k", D.top_k, "Top-k sampling of the task LM's outputs (paper 10); 1: "
                     "greedy, 0: the full distribution.")
flags.DEFINE_integer("sources_per_step", D.sources_per_step, "Training sentences per step.")
flags.DEFINE_integer("eval_samples", D.eval_samples, "Test samples per input (paper 32).")
flags.DEFINE_integer("dev_limit", D.dev_limit, "Validation inputs (0: all 16).")
flags.DEFINE_integer("test_limit", D.test_limit, "Test inputs (0: all).")
flags.DEFINE_bool("paper", False, "The papers' settings (steps, samples, full dev/test, 5 tokens).")
run_flags.define(D)
run_flags.define_agent()
FLAGS = flags.FLAGS

_PAPER = {"num_samples": 32, "num_bootstraps": 4, "eval_samples": 32, "dev_limit": 0,
          "test_limit": 0, "eval_every": 50, "classifier_pool": 4000}
_TASK_FLAGS = ("method", "task", "direction", "dataset_seed", "train_file", "task_lm", "policy_lm",
               "content_lm", "content_layer", "content_baseline", "style_classifier",
               "classifier_pool", "fluency_classifier", "ppl_lm", "cache_dir", "num_samples",
               "num_bootstraps", "sources_per_step", "eval_samples", "dev_limit", "test_limit",
               "source_token", "top_k")


def task_values(defaults: dict) -> dict:
  """Task flags; with --paper, the papers' value of each flag not given explicitly."""
  out = {}
  for name in defaults:
    if hasattr(FLAGS, name):
      given = FLAGS[name].present
      out[name] = _PAPER[name] if FLAGS.paper and name in _PAPER and not given else getattr(FLAGS,
                                                                                            name)
  return out


def config_from_flags() -> style_transfer.StyleTransferConfig:
  agent = run_flags.agent_values(dict(paper.SAMPLER) if FLAGS.paper
                                 else style_transfer.CPU_AGENT_OVERRIDES, method=FLAGS.method)
  shared = run_flags.values()
  shared.pop("verbalizers")
  shared["template"] = shared["template"] or generation.TEMPLATE
  if FLAGS.paper and not FLAGS["steps"].present:
    shared["steps"] = style_transfer.PAPER_STEPS.get(FLAGS.method.split("-")[0], shared["steps"])
  values = task_values({n: None for n in _TASK_FLAGS + tuple(_PAPER)})
  if FLAGS.paper and not FLAGS["eval_every"].present:
    shared["eval_every"] = _PAPER["eval_every"]
  values.pop("eval_every", None)
  return dataclasses.replace(D, agent=agent, **values, **shared)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    cli.run_main(lambda: style_transfer.run(config_from_flags()))
  except style_transfer.trainer.Interrupted:
    sys.exit(130)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
