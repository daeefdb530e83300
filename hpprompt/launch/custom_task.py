"""Your own reward with the prompt agent (PIN / RLPrompt): `run(CustomTaskConfig(...))` is what
`experiments/custom_task.py` calls.

The reward is a function in a Python file (`reward="my_reward.py:score"`, see
`hpprompt.tasks.custom`); the task LM generates with the style-transfer generator and template, the
agent, presets, run directory, checkpoints, `resume`, `tensorboard` and the report are the ones of
every agent launcher (the style-transfer launcher's models, generator and agent set-up are reused).
"""
import dataclasses
import os

from hpprompt.agent import trainer
from hpprompt.launch import cli
from hpprompt.launch import run_flags
from hpprompt.launch import style_transfer
from hpprompt.tasks import custom
from hpprompt.tasks import generation
from hpprompt.training import sharding
from hpprompt.training import writers


@dataclasses.dataclass(frozen=True)
class CustomTaskConfig(run_flags.RunSettings):
  method: str = "pin"
  reward: str = ""                     # FILE.py:function
  inputs: str = ""                     # training inputs, one per line
  dev_inputs: str | None = None        # default: --inputs
  test_inputs: str | None = None       # default: no test evaluation
  task_lm: str = "smollm2"
  policy_lm: str = "smollm2"
  num_samples: int = 4                 # outputs per (prompt, input)
  inputs_per_step: int = 2
  eval_samples: int = 4                # outputs per test input
  dev_limit: int = 4                   # 0: every dev input
  test_limit: int = 0                  # 0: every test input
  top_k: int = 10
  template: str = generation.TEMPLATE
  steps: int = 60
  agent: dict = dataclasses.field(
      default_factory=lambda: dict(style_transfer.CPU_AGENT_OVERRIDES))
  source_token: str | None = None
  workdir: str = "runs/custom_task"
  checkpoint_every: int = 10


def load_inputs(cfg) -> tuple[list[str], list[str], list[str]]:
  """(train, dev, test) inputs, each file's errors naming its flag."""
  out = {}
  for name in ("inputs", "dev_inputs", "test_inputs"):
    path = getattr(cfg, name)
    if name == "inputs" and not path:
      raise cli.FlagError("inputs", "give the training inputs, one per line "
                          "(--inputs=FILE).")
    with cli.flag(name):
      out[name] = custom.read_inputs(path) if path else None
  limit = lambda xs, n: xs[:n] if n else xs
  return (out["inputs"], limit(out["dev_inputs"] or out["inputs"], cfg.dev_limit),
          limit(out["test_inputs"] or [], cfg.test_limit))


def run(cfg: CustomTaskConfig) -> dict:
  """Trains (or resumes), selects the best prompt on dev, scores it on the test inputs."""
  cli.check_positive(cfg, cli.RUN_COUNTS + ("num_samples", "inputs_per_step", "eval_samples"))
  for name in ("dev_limit", "test_limit", "top_k"):
    if getattr(cfg, name) < 0:
      raise cli.FlagError(name, f"must be >= 0, got {getattr(cfg, name)}.")
  cli.check_run_dir(cfg)                # before any model is loaded
  agent_cfg = style_transfer.agent_config(cfg)
  if not cfg.reward:
    raise cli.FlagError("reward", "give the reward function as --reward=FILE.py:function.")
  with cli.flag("reward"):
    fn, name = custom.load_reward(cfg.reward)
  train, dev, test = load_inputs(cfg)
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(cfg.num_devices)
  models = style_transfer.load_models(cfg, {"policy_lm": cfg.policy_lm, "task_lm": cfg.task_lm})
  generator = style_transfer.make_generator(cfg, models)
  for flag_name, inputs in (("inputs", train), ("dev_inputs", dev), ("test_inputs", test)):
    with cli.flag(flag_name if getattr(cfg, flag_name) else "inputs"):
      if inputs:     # a prompt of prompt_length tokens + the longest input + its new tokens
        generator.check_length([" x" * agent_cfg.prompt_length], inputs)
  task = custom.CustomRewardTask(
      generator, fn, name, train=train, dev=dev, test=test if cfg.evaluate_test else [],
      num_samples=cfg.num_samples, inputs_per_step=cfg.inputs_per_step,
      eval_samples=cfg.eval_samples, seed=cfg.seed)
  agent = style_transfer.make_agent(cfg, models, agent_cfg, mesh)
  run_ = cli.open_run(cfg, {**dataclasses.asdict(cfg), "task": f"custom ({os.path.basename(name)})",
                            "agent_config": dataclasses.asdict(agent_cfg)})
  run_.print(f"{cfg.method} with reward {name}: policy {cfg.policy_lm}, task {cfg.task_lm}, "
             f"{len(train)} training / {len(dev)} dev / {len(task.test)} test inputs, "
             f"{cfg.steps} steps -> {cfg.workdir}")
  try:
    results = trainer.train(agent, task, run_, trainer.TrainConfig(
        steps=cfg.steps, eval_every=cfg.eval_every, log_every=cfg.log_every, seed=cfg.seed))
  except custom.RewardError as e:
    raise cli.FlagError("reward", cli.one_line(e)) from e
  if task.last_outputs is not None:
    path = os.path.join(cfg.workdir, "test_outputs.txt")
    writers.write_file(path, "".join(" | ".join(s.replace("\n", " ") for s in samples) + "\n"
                                     for samples in task.last_outputs))
    results["test_outputs"] = path
  run_.finish(results)
  return results
