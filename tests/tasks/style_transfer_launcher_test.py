"""The style transfer launchers end to end on tiny random models: outputs, resume, bad input."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from hpprompt.agent import agent as agent_lib
from hpprompt.agent import trainer
from hpprompt.launch import cli
from hpprompt.launch import style_transfer
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(model_dir, workdir, **kw):
  # One prompt per source, one dev and one test input, 4 samples everywhere: every generation
  # call has the same shape (few compilations).
  agent = dict(prompt_length=2, prompts_per_step=2, mlp_hidden=16, replay_batch=4,
               replay_capacity=64, filter_top_k=50, learning_rate=1e-3)
  kw = {"steps": 4, "eval_every": 2, "checkpoint_every": 2, "content_layer": 1,
        "classifier_pool": 20, "dev_limit": 1, "test_limit": 1, "num_samples": 2,
        "num_bootstraps": 2, "eval_samples": 4, **kw}
  kw.setdefault("cache_dir", str(workdir.parent / "cache"))    # classifier trained once
  return style_transfer.StyleTransferConfig(
      method="pin", task_lm=model_dir, policy_lm=model_dir, workdir=str(workdir),
      source_token="<s>", agent=agent, **kw)


def test_end_to_end_and_resume(tiny_gpt2_dir, tmp_path, monkeypatch):
  full = style_transfer.run(_cfg(tiny_gpt2_dir, tmp_path / "full"))
  files = set(os.listdir(tmp_path / "full"))
  assert {"config.json", "metrics.jsonl", "prompts.csv", "results.json", "checkpoints",
          "test_outputs.0to1.txt"} <= files
  assert {"style_classifier.npz", "content_baseline.json"} <= set(os.listdir(tmp_path / "cache"))
  lines = (tmp_path / "full" / "test_outputs.0to1.txt").read_text().split("\n")
  assert len(lines) == 2 and lines[-1] == ""
  for key in ("test_content", "test_style", "test_joint_cs", "test_bleu", "test_ppl"):
    assert key in full
  assert 0 <= full["components"]["style_classifier_heldout_accuracy"] <= 1
  drop = ("time_sample", "time_reward", "time_learn", "time_generate", "time_score")
  rows = launch_utils.read_metrics(tmp_path / "full", drop=drop)
  assert [r["step"] for r in rows] == [1, 2, 3, 4] and "dev_reward" in rows[1]
  restore = launch_utils.interrupt_on_call(monkeypatch, agent_lib.PromptAgent, "learn", 3,
                                           "keyboard_interrupt")
  with pytest.raises(trainer.Interrupted):
    style_transfer.run(_cfg(tiny_gpt2_dir, tmp_path / "cut"))
  restore()
  resumed = style_transfer.run(_cfg(tiny_gpt2_dir, tmp_path / "cut", resume=True))
  assert launch_utils.read_metrics(tmp_path / "cut", drop) == rows
  assert resumed["best"] == full["best"]
  assert (tmp_path / "cut" / "test_outputs.0to1.txt").read_text() == "\n".join(lines)
  # --noevaluate_test: train and select only (the test is scored later by the evaluation launcher).
  no_test = style_transfer.run(_cfg(tiny_gpt2_dir, tmp_path / "no_test", steps=2,
                                    evaluate_test=False))
  assert "best" in no_test and not any(k.startswith("test_") for k in no_test)
  assert "test_outputs.0to1.txt" not in os.listdir(tmp_path / "no_test")


@pytest.mark.parametrize("change,flag", [
    (dict(task="imdb"), "task"),
    (dict(direction="2to1"), "direction"),
    (dict(method="ppo"), "method"),
    (dict(train_file="/nonexistent/train.txt"), "train_file"),
    (dict(content_layer=9), "content_layer"),
    (dict(sources_per_step=4), "prompts_per_step"),
    (dict(num_samples=0), "num_samples"),
])
def test_bad_settings_name_the_flag(tiny_gpt2_dir, tmp_path, change, flag):
  with pytest.raises(cli.FlagError) as e:
    style_transfer.run(dataclasses.replace(_cfg(tiny_gpt2_dir, tmp_path / "bad"), **change))
  assert e.value.flag == flag, str(e.value)


def _eval_cfg(model_dir, tmp_path, **kw):
  base = dataclasses.asdict(_cfg(model_dir, tmp_path / "eval"))
  base.update(test_limit=0, cache_dir=str(tmp_path / "cache"))
  base.update(kw)
  return style_transfer.EvaluateConfig(**base)


def test_evaluate_outputs_file_and_prompt(tiny_gpt2_dir, tmp_path):
  out = tmp_path / "out.txt"
  out.write_text("".join(f"output {i}\n" for i in range(500)))
  res = style_transfer.evaluate(_eval_cfg(tiny_gpt2_dir, tmp_path, outputs=str(out), test_limit=4))
  assert res["num_outputs"] == 4 and res["bleu"] >= 0 and res["fluency"] is None
  res = style_transfer.evaluate(_eval_cfg(tiny_gpt2_dir, tmp_path, prompt=" great", test_limit=1,
                                          output_json=str(tmp_path / "r.json")))
  assert res["num_outputs"] == 1
  assert len(json.loads((tmp_path / "r.json").read_text())["outputs"]) == 1


@pytest.mark.parametrize("content,kw,flag", [
    (None, dict(outputs="/nonexistent/out.txt"), "outputs"),
    ("", dict(), "outputs"),
    ("a\nb\n", dict(), "outputs"),
    (None, dict(prompt=" great" * 600), "prompt"),
    (None, dict(prompt="Some text:", template='"{sentence_1}" {prompt}'), "template"),
    (None, dict(), "outputs"),
])
def test_evaluate_bad_input_names_the_flag(tiny_gpt2_dir, tmp_path, content, kw, flag):
  if content is not None:
    (tmp_path / "o.txt").write_text(content)
    kw["outputs"] = str(tmp_path / "o.txt")
  with pytest.raises(cli.FlagError) as e:
    style_transfer.evaluate(_eval_cfg(tiny_gpt2_dir, tmp_path, **kw))
  assert e.value.flag == flag, str(e.value)


@pytest.mark.parametrize("script,args,start", [
    ("style_transfer.py", ["--direction=sideways"], "error: --direction: unknown direction"),
    ("evaluate_style_transfer.py", ["--outputs=/nonexistent/o.txt"], "error: --outputs: outputs"),
    ("evaluate_style_transfer.py", ["--prompt=x", "--template={prompt} no slot"],
     "error: --template: template"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, script, args, start):
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", script), *args,
                         f"--cache_dir={tmp_path}/c"] + (
                             [f"--workdir={tmp_path}/w"] if script == "style_transfer.py" else []),
                        capture_output=True, text=True, timeout=300,
                        env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and errors[0].startswith(start), proc.stderr[-2000:]
