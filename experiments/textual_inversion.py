"""Textual inversion with CLIP: a hard prompt per target image by PIN, RLPrompt or PEZ.

  python experiments/textual_inversion.py --method=pin                  # bundled images, ViT-H-14
  python experiments/textual_inversion.py --method=pez --image=cat.jpg,https://.../x.png
  python experiments/textual_inversion.py --method=rlprompt --image=DIR --clip=/path/open_clip_dir
  python experiments/textual_inversion.py --clip=tiny --steps=5          # offline smoke run
  python experiments/textual_inversion.py --workdir=runs/a --resume     # continue after Ctrl-C

--clip takes a hub name (default: OpenCLIP ViT-H-14 laion2b_s32b_b79k, as the papers), an OpenCLIP
or Hugging Face CLIP directory, or 'tiny' (random). --paper uses the papers' settings (PIN: 20,000
steps, 32 prompts of 8 tokens per step, k = 20,000; PEZ: 3,000 steps, 16 tokens). Logic lives in
hpprompt.launch.textual_inversion; see `--helpfull` for every flag.
"""
import dataclasses
import sys

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import paper
from hpprompt.launch import run_flags
from hpprompt.launch import textual_inversion as ti

D = ti.TextualInversionConfig()
flags.DEFINE_string("method", D.method, "pez, or an agent preset: pin, rlprompt, pin-td, "
                    "pin-no-fluency, rlprompt-fluency, rlprompt-rb.")
flags.DEFINE_string("image", D.image, "Target images: files, directories or http(s) URLs, "
                    "comma-separated (default: the bundled public-domain images).")
flags.DEFINE_string("clip", D.clip, "CLIP: hub name, OpenCLIP / Hugging Face directory, or 'tiny'.")
flags.DEFINE_string("policy_lm", D.policy_lm, "Policy LM (agent) and perplexity LM: hub name, "
                    "local HF dir, or 'smollm2'.")
flags.DEFINE_bool("paper", False, "The papers' settings (no CPU-size overrides, paper steps).")
flags.DEFINE_integer("top_prompts", D.top_prompts, "Best prompts per target in prompts.csv.")
run_flags.define(D)
run_flags.define_agent("Prompt tokens (default: 8 agent, 16 PEZ).",
                       "Learning rate (agent Adam / PEZ AdamW).")
FLAGS = flags.FLAGS


def config_from_flags() -> ti.TextualInversionConfig:
  pez = FLAGS.method == "pez"
  agent = dict(paper.SAMPLER) if FLAGS.paper else dict(ti.CPU_AGENT_OVERRIDES)
  options = {}
  if not pez:
    run_flags.check_foreign(FLAGS.method)
  for name in run_flags.AGENT_FIELDS:
    value = getattr(FLAGS, name)
    if value is None:
      continue
    if pez and name in ("prompt_length", "learning_rate"):
      options[name] = value
    elif pez:
      raise cli.FlagError(name, "is an agent setting; --method=pez does not use it.")
    else:
      agent[name] = None if name.endswith("top_k") and value == 0 else value
  shared = {k: v for k, v in run_flags.values().items() if k not in ("template", "verbalizers")}
  kind = "pez" if pez else "agent"
  if FLAGS.paper and not FLAGS["steps"].present:
    shared["steps"] = ti.PAPER_STEPS[kind]
  if FLAGS.paper and not FLAGS["eval_every"].present:
    shared["eval_every"] = ti.PAPER_EVAL_EVERY[kind]
  return dataclasses.replace(
      D, method=FLAGS.method, image=FLAGS.image, clip=FLAGS.clip, policy_lm=FLAGS.policy_lm,
      agent=agent, pez=options, source_token=FLAGS.source_token, top_prompts=FLAGS.top_prompts,
      **shared)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    cli.run_main(lambda: ti.run(cli.run_main(config_from_flags)))
  except ti.trainer.Interrupted:
    sys.exit(130)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
