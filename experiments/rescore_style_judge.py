"""Rescore the README's style-transfer table with a separate test judge (issue 21).

  python experiments/rescore_style_judge.py      # -> docs/style_transfer/judge_rescore.{json,md}

Scores the committed test outputs (docs/style_transfer/<prompt>.<direction>.json) with the reward
classifier that trained the prompts and with the hashed n-gram judge of
hpprompt/tasks/style_judge.py (fitted on Yelp sentences disjoint from the reward pool and the test
set); differences to the null prompt with paired bootstrap s.e. Logic: hpprompt/launch/style_judge.py.
"""
import dataclasses

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import style_judge

D = style_judge.RescoreConfig()
flags.DEFINE_string("docs_dir", D.docs_dir, "Folder of the table's <prompt>.<direction>.json.")
flags.DEFINE_string("cache_dir", D.cache_dir, "Reward classifier / BERTScore baseline cache.")
flags.DEFINE_string("output", D.output, "Writes OUTPUT.json and OUTPUT.md.")
flags.DEFINE_integer("bootstrap", D.bootstrap, "Bootstrap resamples of the inputs.")
flags.DEFINE_integer("seed", D.seed, "Bootstrap seed.")
flags.DEFINE_bool("rlprompt_released", D.rlprompt_released,
                  "Also rescore RLPrompt's released Yelp outputs.")
flags.DEFINE_list("rows", list(D.rows), "Rows: <row>.<direction>.json in --docs_dir, null first.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cfg = dataclasses.replace(D, rows=tuple(FLAGS.rows), **{n: getattr(FLAGS, n) for n in (
      "docs_dir", "cache_dir", "output", "bootstrap", "seed", "rlprompt_released")})
  cli.run_main(style_judge.rescore, cfg)
  print(open(cfg.output + ".md").read())


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
