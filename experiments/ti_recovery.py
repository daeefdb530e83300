"""Attribute recovery of textual inversion on the synthetic CLIP (issue #21): PIN, RLPrompt, PEZ.

  python experiments/train_synthetic_clip.py --out=runs/synthetic_clip
  python experiments/ti_recovery.py --clip=runs/synthetic_clip/clip --out=runs/ti_recovery

Each method inverts the first --targets held-out images at the same budget (prompts scored by the
CLIP), for every seed, through the textual-inversion launcher; writes recovery.json, recovery.md
and contact_sheet.png to --out. Logic lives in hpprompt.launch.ti_recovery.
"""
from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import ti_recovery as tr

D = tr.RecoveryConfig()
flags.DEFINE_string("clip", D.clip,
                    "A synthetic CLIP directory (experiments/train_synthetic_clip.py).")
flags.DEFINE_string("out", D.out, "Report directory.")
flags.DEFINE_string("runs_dir", None, "Run directories (default: <out>/runs).")
flags.DEFINE_list("methods", list(D.methods), "pin, rlprompt, pez.")
flags.DEFINE_list("seeds", [str(s) for s in D.seeds], "Seeds of the methods.")
flags.DEFINE_integer("targets", D.targets, "Held-out images inverted.")
flags.DEFINE_integer("prompt_length", D.prompt_length, "Prompt tokens (every method).")
flags.DEFINE_integer("agent_steps", D.agent_steps, "Agent steps; PEZ gets steps x prompts.")
flags.DEFINE_integer("prompts_per_step", D.prompts_per_step, "Agent prompts per step.")
flags.DEFINE_integer("evaluations", D.evaluations, "Validations per run.")
flags.DEFINE_string("policy_lm", D.policy_lm, "The agent's policy LM.")
flags.DEFINE_string("pez_init", D.pez_init, "PEZ's start: uniform (seeded vectors) or vocab.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  cli.run_main(tr.run, tr.RecoveryConfig(
      clip=FLAGS.clip, out=FLAGS.out, runs_dir=FLAGS.runs_dir, methods=tuple(FLAGS.methods),
      seeds=tuple(int(s) for s in FLAGS.seeds), targets=FLAGS.targets,
      prompt_length=FLAGS.prompt_length, agent_steps=FLAGS.agent_steps,
      prompts_per_step=FLAGS.prompts_per_step, evaluations=FLAGS.evaluations,
      policy_lm=FLAGS.policy_lm, pez_init=FLAGS.pez_init))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
