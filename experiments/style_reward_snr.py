"""The style-transfer reward's signal-to-noise, and hand-written style prompts against the null.

  python experiments/style_reward_snr.py --direction=0to1 --output_json=docs/style_transfer/snr/0to1.json
  python experiments/style_reward_snr.py --report=docs/style_transfer/snr/0to1.json,docs/style_transfer/snr/1to0.json
  python experiments/style_reward_snr.py --runs=docs/style_transfer/greedy/pin.0to1 --figure=curves.png

Scores random prompts of the untrained agent, the null prompt and hand-written prompts on the
direction's training sentences (sampled and greedy outputs); see hpprompt/launch/style_snr.py.
"""
import dataclasses
import json

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import style_snr

D = style_snr.RewardSNRConfig()
flags.DEFINE_string("direction", D.direction, "0to1 or 1to0 (Yelp: negative -> positive is 0to1).")
flags.DEFINE_string("task", D.task, "yelp or shakespeare.")
flags.DEFINE_string("method", D.method, "Agent preset whose untrained policy draws the prompts.")
flags.DEFINE_integer("random_prompts", D.random_prompts, "Prompts drawn from the untrained agent.")
flags.DEFINE_integer("sources", D.sources, "Training sentences for the sampled outputs.")
flags.DEFINE_integer("samples", D.samples, "Top-k outputs per (prompt, sentence).")
flags.DEFINE_integer("greedy_sources", D.greedy_sources, "Training sentences, greedy outputs.")
flags.DEFINE_integer("top_k", D.top_k, "Top-k sampling of the task LM (the launcher's 10).")
flags.DEFINE_multi_string("prompts", None, "Hand-written prompts (default: three per direction).")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM (generates): hub name, local HF dir, 'smollm2'.")
flags.DEFINE_string("policy_lm", D.policy_lm, "Policy LM of the untrained agent.")
flags.DEFINE_string("source_token", None, "The policy's start token (default: the LM's).")
flags.DEFINE_integer("content_layer", D.content_layer, "BERTScore layer of the content encoder.")
flags.DEFINE_integer("classifier_pool", D.classifier_pool, "Sentences per style, reward classifier.")
flags.DEFINE_integer("seed", D.seed, "Seed of the agent's draws and of the sampling.")
flags.DEFINE_string("cache_dir", "runs/style_transfer_cache", "Classifier / baseline cache.")
flags.DEFINE_string("output_json", D.output_json, "Where the measurement goes.")
flags.DEFINE_list("report", None, "Only print the markdown tables of these JSON files.")
flags.DEFINE_list("runs", None, "Only summarise these training runs: did the reward, content and "
                  "style move (first vs last 20%, slope)?")
flags.DEFINE_string("figure", None, "With --runs: also draw their curves to this PNG.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if FLAGS.runs:
    summary = cli.run_main(style_snr.learning, FLAGS.runs)
    if FLAGS.figure:
      cli.run_main(style_snr.curves_figure, FLAGS.runs, FLAGS.figure)
    print(style_snr.learning_markdown(summary))
    return
  if FLAGS.report:
    def load():
      results = []
      for path in FLAGS.report:
        with cli.flag("report"), open(path) as f:
          results.append(json.load(f))
      return results
    print(style_snr.markdown(cli.run_main(load)))
    return
  names = ("direction", "task", "method", "random_prompts", "sources", "samples",
           "greedy_sources", "top_k", "seed", "cache_dir", "output_json", "task_lm", "policy_lm",
           "source_token", "content_layer", "classifier_pool")
  cfg = dataclasses.replace(D, prompts=tuple(FLAGS.prompts) if FLAGS.prompts else None,
                            **{n: getattr(FLAGS, n) for n in names})
  results = cli.run_main(style_snr.measure, cfg)
  print(style_snr.markdown([results]))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
