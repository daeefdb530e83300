"""experiments/soft_prompt.py end to end on a tiny random GPT-2: outputs, resume, bad flags."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from hpprompt.gradient import soft_prompt as soft_lib
from hpprompt.launch import cli
from hpprompt.launch import soft_prompt
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cfg(model_dir, workdir, **kw):
  kw = {"steps": 6, "eval_every": 2, "checkpoint_every": 5, "prompt_length": 3,
        "learning_rate": 0.05, **kw}
  return soft_prompt.BaselineConfig(task_lm=model_dir, workdir=str(workdir), **kw)


def _metrics(workdir):
  return launch_utils.read_metrics(workdir, drop=("time_step",))


@pytest.mark.parametrize("method", ["soft", "infoprompt", "pez"])
def test_end_to_end_outputs(tiny_gpt2_dir, small_data_dir, tmp_path, method):
  cfg = _cfg(tiny_gpt2_dir, tmp_path / "run", method=method, data_dir=small_data_dir,
             target_train_acc=0.0)
  results = soft_prompt.run(cfg)
  files = set(os.listdir(tmp_path / "run"))
  assert {"config.json", "metrics.jsonl", "prompts.csv", "results.json", "checkpoints"} <= files
  rows = _metrics(tmp_path / "run")
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
  assert all("dev_accuracy" in r for r in rows[1::2]) and "dev_accuracy" not in rows[0]
  assert results["step_reaching_target"] == 1 and 1 <= results["best_step"] <= 6
  assert results["best_dev"] == max(r["dev_accuracy"] for r in rows[1::2])
  assert results["test_examples"] == 64 and 0.0 <= results["test_accuracy"] <= 1.0
  if method == "infoprompt":
    assert {"head_loss", "rep_loss", "kl", "task_loss"} <= set(rows[0])
  if method == "pez":
    hard = results["hard_prompt"]
    assert results["prompt"] == hard["prompt"] and len(hard["ids"]) == 3
    assert results["perplexity"] > 1.0
    # The test accuracy is the string's, as hpprompt.tasks scores any prompt.
    _, _, task = soft_prompt.build(dataclasses.replace(cfg, workdir=str(tmp_path / "other")))
    assert results["test_accuracy"] == pytest.approx(task.accuracy([hard["prompt"]], "test")[0])
    assert results["dev_accuracy_string"] == pytest.approx(task.accuracy([hard["prompt"]])[0])
  config = json.loads((tmp_path / "run" / "config.json").read_text())
  assert config["method_config"]["prompt_length"] == 3 and config["seed"] == 0


@pytest.mark.parametrize("method, how", [("infoprompt", "sigint"), ("pez", "keyboard_interrupt")])
def test_interrupt_and_resume_equals_uninterrupted(tiny_gpt2_dir, small_data_dir, tmp_path,
                                                   monkeypatch, method, how):
  """Ctrl-C (finish the step, save) or a sudden KeyboardInterrupt, then resume; batches of 8."""
  kw = dict(method=method, batch_size=8, data_dir=small_data_dir)
  full = soft_prompt.run(_cfg(tiny_gpt2_dir, tmp_path / "full", **kw))
  restore = launch_utils.interrupt_on_call(monkeypatch, soft_lib.SoftPrompt, "train_step", 4, how)
  with pytest.raises(soft_prompt.Interrupted):
    soft_prompt.run(_cfg(tiny_gpt2_dir, tmp_path / "cut", **kw))
  restore()
  resumed = soft_prompt.run(_cfg(tiny_gpt2_dir, tmp_path / "cut", resume=True, **kw))
  assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "full")
  for key in ("best_dev", "best_step", "prompt", "top_prompts", "step_reaching_target",
              "test_accuracy"):
    assert resumed[key] == full[key], key
  assert (tmp_path / "cut" / "prompts.csv").read_text() == (
      tmp_path / "full" / "prompts.csv").read_text()


@pytest.mark.parametrize("change, flag", [
    (dict(dataset="nope"), "dataset"),
    (dict(dataset_seed=7), "dataset_seed"),
    (dict(method="ppo"), "method"),
    (dict(verbalizers=(" terrible", " absolutely-great")), "verbalizers"),
    (dict(template="{sentence_1} It was"), "template"),
    (dict(task_lm="/nonexistent/model"), "task_lm"),
    (dict(steps=0), "steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(prompt_length=0), "prompt_length"),
    (dict(init="zeros"), "init"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(options={"colour": 1}), "colour"),
    (dict(options={"variational_head": True}), "variational_head"),    # not a soft-prompt setting
    (dict(method="infoprompt", options={"logp_floor": 1.0}), "logp_floor"),
    (dict(k_per_class=8), "k_per_class"),                              # few-shot sets are fixed
    (dict(dataset="glue/rte"), "k_per_class"),
])
def test_bad_settings_name_the_flag(tiny_gpt2_dir, tmp_path, change, flag):
  with pytest.raises(cli.FlagError) as e:
    soft_prompt.run(dataclasses.replace(_cfg(tiny_gpt2_dir, tmp_path / "bad"), **change))
  assert e.value.flag == flag, str(e.value)


def test_cli_bad_flag_exits_2_with_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "soft_prompt.py"), "--method=ppo",
       f"--workdir={tmp_path}/w"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert errors == [errors[0]] and errors[0].startswith("error: --method: unknown method 'ppo'")


def test_scores_report_accuracy_and_matthews():
  logits = [[2.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]
  got = soft_prompt.scores(logits, [0, 1, 0, 0])
  assert got["accuracy"] == 0.75
  assert got["mcc"] == pytest.approx((1 * 2 - 1 * 0) / (2 * 1 * 3 * 2) ** 0.5)


def test_glue_cola_offline_is_scored_by_matthews(tiny_gpt2_dir, tmp_path):
  """glue/cola through the real tfds builder on the checked-in fixture (tests/tasks)."""
  tfds_test = pytest.importorskip("tests.tasks.tfds_test")
  root = str(tmp_path / "tfds")
  with tfds_test._offline(tfds_test._local_download):   # noqa: SLF001  (reuse, not duplicate)
    tfds_test._prepare("glue/cola", root)                 # noqa: SLF001
  cfg = _cfg(tiny_gpt2_dir, tmp_path / "run", dataset="glue/cola", data_dir=root, k_per_class=2,
             verbalizers=(" terrible", " great"), steps=2)
  results = soft_prompt.run(cfg)
  assert results["metric"] == "mcc" and results["train_examples"] == 4
  assert results["dev_examples"] == 4 and results["test_examples"] == 5
  rows = _metrics(tmp_path / "run")
  assert "dev_mcc" in rows[-1] and -1.0 <= results["test_mcc"] <= 1.0
