"""Your own reward with PIN or RLPrompt: the task LM continues each prompt and input, your function
scores the outputs.

  python experiments/custom_task.py --reward=examples/question_reward.py:reward \
      --inputs=examples/inputs.txt --workdir=runs/question
  python experiments/custom_task.py --reward=my.py:score --inputs=train.txt --dev_inputs=dev.txt \
      --test_inputs=test.txt --method=rlprompt --tensorboard
  python experiments/custom_task.py ... --workdir=runs/question --resume     # after Ctrl-C

The function: `score(prompts, inputs, outputs) -> one number per output` (aligned lists). Logic
lives in hpprompt.launch.custom_task; see `--helpfull` for every flag.
"""
import dataclasses
import sys

from absl import app
from absl import flags
from absl import logging

from hpprompt.launch import cli
from hpprompt.launch import custom_task
from hpprompt.launch import run_flags
from hpprompt.launch import style_transfer
from hpprompt.tasks import generation

D = custom_task.CustomTaskConfig()
flags.DEFINE_string("method", D.method, "Agent preset: pin, rlprompt, pin-td, rlprompt-rb, ...")
flags.DEFINE_string("reward", None, "Reward function FILE.py:function, called as "
                    "function(prompts, inputs, outputs) -> one number per output.")
flags.DEFINE_string("inputs", None, "Training inputs, one per line (UTF-8).")
flags.DEFINE_string("dev_inputs", None, "Validation inputs (default: --inputs).")
flags.DEFINE_string("test_inputs", None, "Test inputs (default: no test evaluation).")
flags.DEFINE_string("task_lm", D.task_lm, "Task LM (generates): hub name, local HF dir, 'smollm2'.")
flags.DEFINE_string("policy_lm", D.policy_lm, "Policy LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_integer("num_samples", D.num_samples, "Outputs per (prompt, input) in training.")
flags.DEFINE_integer("inputs_per_step", D.inputs_per_step, "Training inputs per step.")
flags.DEFINE_integer("eval_samples", D.eval_samples, "Outputs per test input.")
flags.DEFINE_integer("dev_limit", D.dev_limit, "Validation inputs (0: all).")
flags.DEFINE_integer("test_limit", D.test_limit, "Test inputs (0: all).")
flags.DEFINE_integer("top_k", D.top_k, "Top-k sampling of the task LM (0: the full vocabulary).")
run_flags.define(D)
run_flags.define_agent()
FLAGS = flags.FLAGS

_TASK_FLAGS = ("method", "reward", "inputs", "dev_inputs", "test_inputs", "task_lm", "policy_lm",
               "num_samples", "inputs_per_step", "eval_samples", "dev_limit", "test_limit",
               "top_k", "source_token")


def config_from_flags() -> custom_task.CustomTaskConfig:
  shared = run_flags.values()
  shared.pop("verbalizers")
  shared["template"] = shared["template"] or generation.TEMPLATE
  values = {name: getattr(FLAGS, name) for name in _TASK_FLAGS}
  values["reward"], values["inputs"] = values["reward"] or "", values["inputs"] or ""
  agent = run_flags.agent_values(style_transfer.CPU_AGENT_OVERRIDES)
  return dataclasses.replace(D, agent=agent, **values, **shared)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    cli.run_main(custom_task.run, config_from_flags())
  except custom_task.trainer.Interrupted:
    sys.exit(130)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
