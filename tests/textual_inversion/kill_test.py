"""kill -9 during the first of two textual-inversion targets: a fresh start is refused with a line
that names --resume, and --resume finishes the first target (from its checkpoint, or afresh when it
died before its first one) and then runs the second, ending as an uninterrupted run."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hpprompt.launch import cli
from hpprompt.launch import textual_inversion as launch
from hpprompt.training.run import saved_steps
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TIME_KEYS = ("time_sample", "time_reward", "time_learn", "time_step")
KILL_AT = 2      # the agent update before which the process dies (after the step-1 checkpoint)


def _cfg(images, lm_dir, workdir, **kw):
  agent = dict(prompt_length=2, prompts_per_step=4, mlp_hidden=16, replay_batch=4,
               replay_capacity=64, filter_top_k=50, learning_rate=1e-3)
  return launch.TextualInversionConfig(
      method="pin", clip="tiny", policy_lm=lm_dir, source_token="<s>", agent=agent,
      workdir=str(workdir), image=images, steps=2, eval_every=1, checkpoint_every=1, **kw)


def _outputs(results):
  return [(launch_utils.read_metrics(t["workdir"], drop=_TIME_KEYS), t["best"])
          for t in results["targets"]]


def test_kill_9_in_first_target_then_resume_runs_both(tiny_gpt2_dir, tmp_path):
  from PIL import Image  # noqa: PLC0415
  rng = np.random.default_rng(0)
  paths = []
  for name in ("a", "b"):
    paths.append(str(tmp_path / f"{name}.png"))
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(paths[-1])
  images = ",".join(paths)
  cfg = _cfg(images, tiny_gpt2_dir, tmp_path / "killed")
  (tmp_path / "cfg.json").write_text(json.dumps(dataclasses.asdict(cfg)))
  proc = subprocess.Popen([sys.executable, "-m", "tests.textual_inversion.kill_worker",
                           str(tmp_path / "cfg.json"), str(KILL_AT)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  reference = _outputs(launch.run(_cfg(images, tiny_gpt2_dir, tmp_path / "full")))
  _, err = proc.communicate(timeout=600)
  assert proc.returncode == -9, err[-3000:]
  assert saved_steps(str(tmp_path / "killed" / "00-a")) == [KILL_AT - 1]
  assert not (tmp_path / "killed" / "01-b").exists()
  # The same run had it died before its first checkpoint: no checkpoint, config and metrics kept.
  shutil.copytree(tmp_path / "killed", tmp_path / "early")
  shutil.rmtree(tmp_path / "early" / "00-a" / "checkpoints")
  for name in ("killed", "early"):
    workdir = tmp_path / name
    if name == "killed":       # a fresh start is refused, naming the way on
      with pytest.raises(cli.FlagError) as e:
        launch.run(_cfg(images, tiny_gpt2_dir, workdir))
      assert e.value.flag == "workdir" and "pass --resume to continue it" in str(e.value)
    results = launch.run(_cfg(images, tiny_gpt2_dir, workdir, resume=True))
    assert [os.path.basename(t["workdir"]) for t in results["targets"]] == ["00-a", "01-b"]
    assert all(os.path.exists(os.path.join(t["workdir"], "results.json"))
               for t in results["targets"])
    assert _outputs(results) == reference
    assert (workdir / "prompts.csv").read_text() == (tmp_path / "full" / "prompts.csv").read_text()
