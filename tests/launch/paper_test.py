"""`--paper`: one table of each paper's set-up, used by both launchers; explicit flags win; offline
it stops with one line naming the model it could not get."""
import dataclasses
import os
import subprocess
import sys

import pytest

from hpprompt import baselines
from hpprompt.agent.config import PRESETS
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import paper
from hpprompt.launch import soft_prompt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_method_has_a_paper_setup():
  assert set(PRESETS) | set(baselines.METHODS) == set(paper.PAPER)


def test_pin_and_rlprompt_setups():
  cfg = paper.apply(fewshot.FewShotConfig(method="pin"))
  assert (cfg.policy_lm, cfg.task_lm, cfg.steps, cfg.eval_every) == (
      "facebook/opt-125m", "roberta-large", 6000, 20)
  assert cfg.selection == "reward" and not cfg.calibrate and cfg.truncate and cfg.agent == {}
  agent = fewshot.agent_config(cfg)                        # the preset itself: PIN's settings
  assert (agent.prompt_length, agent.prompts_per_step, agent.replay_batch, agent.replay_capacity,
          agent.learning_rate, agent.filter_top_k, agent.loss) == (5, 16, 256, 64_000, 5e-5,
                                                                    10_000, "v1")
  cfg = paper.apply(fewshot.FewShotConfig(method="rlprompt"))
  assert (cfg.policy_lm, cfg.task_lm, cfg.steps, cfg.eval_every, cfg.selection) == (
      "distilgpt2", "roberta-large", 12000, 10, "accuracy")


def test_explicit_settings_win():
  base = fewshot.FewShotConfig(method="pin", steps=7, task_lm="my/lm", agent={"prompt_length": 2})
  cfg = paper.apply(base, {"steps", "task_lm", "prompt_length"})
  assert (cfg.steps, cfg.task_lm, cfg.policy_lm, cfg.agent) == (
      7, "my/lm", "facebook/opt-125m", {"prompt_length": 2})
  info = paper.apply(soft_prompt.BaselineConfig(method="infoprompt", options={"gamma": 0.5}),
                     {"gamma"})
  assert info.options == {"prompt_generator": True, "variational_head": True,
                          "weight_decay": 0.01, "warmup_fraction": 0.06, "linear_decay": True,
                          "gamma": 0.5}
  assert (info.batch_size, info.epochs, info.learning_rate, info.task_lm) == (
      8, 30, 1e-3, "roberta-large")
  assert paper.apply(soft_prompt.BaselineConfig(method="infoprompt", steps=3), {"steps"}).epochs \
      is None
  with pytest.raises(cli.FlagError, match="--method"):
    paper.apply(dataclasses.replace(fewshot.FewShotConfig(), method="ppo"))


def test_epochs_become_steps():
  cfg = soft_prompt.resolve_epochs(soft_prompt.BaselineConfig(epochs=30, batch_size=8))
  assert cfg.steps == 30 * 4                               # 32 SST-2 examples, batches of 8


@pytest.mark.slow
@pytest.mark.parametrize("script, model", [("fewshot_classification.py", "facebook/opt-125m"),
                                           ("soft_prompt.py", "roberta-large")])
def test_paper_offline_exits_2_naming_the_model(tmp_path, script, model):
  env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
         "PYTHONPATH": REPO}
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", script), "--paper",
                         f"--workdir={tmp_path}/w"], capture_output=True, text=True,
                        timeout=300, env=env)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and f"could not get '{model}'" in errors[0], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
