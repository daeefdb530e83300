"""The few-shot launcher end to end on tiny random models: outputs, resume, devices, bad flags."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hpprompt.agent import agent as agent_lib
from hpprompt.agent import trainer
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.metrics import perplexity
from hpprompt.models import hub
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TIME_KEYS = ("time_sample", "time_reward", "time_learn", "reward_flops", "reward_flops_per_s")


def _cfg(model_dir, workdir, **kw):
  agent = dict(prompt_length=2, prompts_per_step=8, mlp_hidden=32, replay_batch=8,
               replay_capacity=64, filter_top_k=50, learning_rate=1e-3)
  agent.update(kw.pop("agent", {}))
  kw = {"steps": 6, "eval_every": 2, "checkpoint_every": 2, **kw}
  return fewshot.FewShotConfig(method="pin", task_lm=model_dir, policy_lm=model_dir,
                               workdir=str(workdir), source_token="<s>", agent=agent, **kw)


def _metrics(workdir):
  return launch_utils.read_metrics(workdir, drop=_TIME_KEYS)


def test_end_to_end_outputs(tiny_gpt2_dir, tmp_path):
  results = fewshot.run(_cfg(tiny_gpt2_dir, tmp_path / "run"))
  files = set(os.listdir(tmp_path / "run"))
  assert {"config.json", "metrics.jsonl", "prompts.csv", "results.json", "checkpoints"} <= files
  rows = _metrics(tmp_path / "run")
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
  assert "dev_reward" in rows[1] and "greedy_prompt" in rows[1]     # PIN selects by reward
  assert 0.0 <= results["test_accuracy"] <= 1.0
  config = json.loads((tmp_path / "run" / "config.json").read_text())
  assert config["agent_config"]["regularizer"] == "tsallis" and config["seed"] == 0
  # Naturalness beside the task score: perplexity of every top prompt under the (causal) task LM.
  lm, tokenizer = hub.load_pretrained(tiny_gpt2_dir)
  prompts = [r["prompt"] for r in results["top_prompts"]]
  want = perplexity.prompt_perplexity(lm, tokenizer, prompts,
                                      bos_token=hub.document_start(tiny_gpt2_dir, tokenizer))
  np.testing.assert_allclose([r["perplexity"] for r in results["top_prompts"]], want, rtol=1e-5)
  assert results["best"]["perplexity"] == results["top_prompts"][0]["perplexity"]
  assert results["perplexity_lm"] == tiny_gpt2_dir
  header = (tmp_path / "run" / "prompts.csv").read_text().splitlines()[0]
  assert header == "rank,prompt,score,step,perplexity"


@pytest.mark.parametrize("how", ["sigint", "keyboard_interrupt"])
def test_interrupt_and_resume_equals_uninterrupted(tiny_gpt2_dir, tmp_path, monkeypatch, how):
  """Ctrl-C (SIGINT: finish the step, save) or an abrupt KeyboardInterrupt, then --resume."""
  full = fewshot.run(_cfg(tiny_gpt2_dir, tmp_path / "full", checkpoint_every=5))
  restore = launch_utils.interrupt_on_call(monkeypatch, agent_lib.PromptAgent, "learn", 4, how)
  with pytest.raises(trainer.Interrupted):
    fewshot.run(_cfg(tiny_gpt2_dir, tmp_path / "cut", checkpoint_every=5))
  restore()
  resumed = fewshot.run(_cfg(tiny_gpt2_dir, tmp_path / "cut", checkpoint_every=5, resume=True))
  assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "full")
  assert resumed["best"] == full["best"] and resumed["top_prompts"] == full["top_prompts"]
  assert (tmp_path / "cut" / "prompts.csv").read_text() == (tmp_path / "full" / "prompts.csv").read_text()


def test_one_and_four_devices_agree(tiny_gpt2_dir, tmp_path):
  one = fewshot.run(_cfg(tiny_gpt2_dir, tmp_path / "one", num_devices=1, steps=4))
  four = fewshot.run(_cfg(tiny_gpt2_dir, tmp_path / "four", num_devices=4, steps=4))
  m1, m4 = _metrics(tmp_path / "one"), _metrics(tmp_path / "four")
  for a, b in zip(m1, m4):
    for key in ("raw_reward", "loss", "train_acc"):
      if key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert a.get("greedy_prompt") == b.get("greedy_prompt")
  assert one["best"]["prompt"] == four["best"]["prompt"]


@pytest.mark.parametrize("change,flag", [
    (dict(dataset="nope"), "dataset"),
    (dict(dataset_seed=7), "dataset_seed"),
    (dict(method="ppo"), "method"),
    (dict(verbalizers=(" terrible", " absolutely-great")), "verbalizers"),
    (dict(template="{sentence_1} It was"), "template"),
    (dict(task_lm="/nonexistent/model"), "task_lm"),
    (dict(steps=0), "steps"),
    (dict(agent={"loss": "v9"}), "loss"),
    (dict(agent={"colour": 1}), "colour"),
])
def test_bad_settings_name_the_flag(tiny_gpt2_dir, tmp_path, change, flag):
  agent = {**_cfg(tiny_gpt2_dir, tmp_path).agent, **change.pop("agent", {})}
  cfg = dataclasses.replace(_cfg(tiny_gpt2_dir, tmp_path / "bad"), agent=agent, **change)
  with pytest.raises(cli.FlagError) as e:
    fewshot.run(cfg)
  assert e.value.flag == flag, str(e.value)


def test_cli_bad_flag_exits_2_with_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "fewshot_classification.py"),
       "--dataset=nope", f"--workdir={tmp_path}/w"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert errors == [errors[0]] and errors[0].startswith("error: --dataset: unknown data set 'nope'")


def test_cli_label_names_the_run_in_reports(tiny_gpt2_dir, tmp_path):
  from hpprompt.report import runs as runs_lib
  workdir = tmp_path / "k50"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "fewshot_classification.py"),
       f"--task_lm={tiny_gpt2_dir}", f"--policy_lm={tiny_gpt2_dir}", "--source_token=<s>",
       "--steps=2", "--eval_every=1", "--prompt_length=2", "--prompts_per_step=4",
       "--mlp_hidden=32", "--replay_batch=4", "--filter_top_k=50", "--noevaluate_test",
       "--label=pin k=50", f"--workdir={workdir}"], capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads((workdir / "config.json").read_text())["label"] == "pin k=50"
  run = runs_lib.load_run(str(workdir))
  assert run.method == "pin k=50"
  assert list(runs_lib.group_runs([run]).values()) == [{"pin k=50": [run]}]


@pytest.mark.parametrize("label", ["", "  ", "a|b", "two\nlines"])
def test_cli_bad_label_exits_2_with_one_line(label, tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "fewshot_classification.py"),
       f"--label={label}", f"--workdir={tmp_path}/w"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and errors[0].startswith("error: --label: must be a non-empty"), errors
  assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "w")
