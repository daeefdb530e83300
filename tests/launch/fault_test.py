"""Faults injected into real runs of the agent launcher on the tiny GPT-2: kill -9 at several
points, damaged checkpoints and a learning rate that blows up. Each resumed run must end exactly
as the uninterrupted one (metrics, best prompts, prompts.csv, test accuracy)."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.training import checkpoint
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TIME_KEYS = ("time_sample", "time_reward", "time_learn")
# (kill point, call) -> the checkpoint step a resume restores
KILLS = {("learn", 1): None, ("manifest", 2): 2, ("log", 5): 4}


def _cfg(model_dir, data_dir, workdir, **kw):
  agent = dict(prompt_length=2, prompts_per_step=8, mlp_hidden=32, replay_batch=8,
               replay_capacity=64, filter_top_k=50, learning_rate=1e-3)
  agent.update(kw.pop("agent", {}))
  kw = {"steps": 6, "eval_every": 2, "checkpoint_every": 2, **kw}
  return fewshot.FewShotConfig(method="pin", task_lm=model_dir, policy_lm=model_dir,
                               data_dir=data_dir, workdir=str(workdir), source_token="<s>",
                               agent=agent, **kw)


def _outputs(workdir):
  results = json.loads(open(os.path.join(workdir, "results.json")).read())
  return (launch_utils.read_metrics(workdir, drop=_TIME_KEYS),
          open(os.path.join(workdir, "prompts.csv")).read(),
          {k: results.get(k) for k in ("best", "top_prompts", "test_accuracy")})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gpt2_dir, data_roots):
  """Kills three runs with SIGKILL (in parallel processes), then runs the reference to the end in
  the directory of the run killed before its first checkpoint (which must be reusable)."""
  root = tmp_path_factory.mktemp("faults")
  procs = {}
  for (point, n) in KILLS:
    workdir = root / f"{point}{n}"
    cfg = _cfg(tiny_gpt2_dir, data_roots["good"], workdir)
    (root / f"{point}.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    procs[(point, n)] = (workdir, subprocess.Popen(
        [sys.executable, "-m", "tests.launch.kill_worker", str(root / f"{point}.json"), point,
         str(n)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  killed = {}
  for key, (workdir, proc) in procs.items():
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == -9, err[-3000:]
    killed[key] = workdir
  ref_dir = killed[("learn", 1)]
  assert not checkpoint_steps(ref_dir)
  with pytest.raises(cli.FlagError) as e:          # nothing to resume: one line, not a restart
    fewshot.run(_cfg(tiny_gpt2_dir, data_roots["good"], ref_dir, resume=True))
  assert e.value.flag == "resume"
  fewshot.run(_cfg(tiny_gpt2_dir, data_roots["good"], ref_dir))   # reuses the directory
  return {"root": root, "reference": _outputs(ref_dir), "reference_dir": ref_dir,
          "killed": killed}


def checkpoint_steps(workdir):
  folder = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []


@pytest.mark.parametrize("point,n", [k for k in KILLS if KILLS[k] is not None])
def test_kill_9_then_resume_equals_uninterrupted(runs, tiny_gpt2_dir, data_roots, capsys, point,
                                                 n):
  workdir = runs["killed"][(point, n)]
  fewshot.run(_cfg(tiny_gpt2_dir, data_roots["good"], workdir, resume=True))
  out = capsys.readouterr().out
  assert f"resumed from step {KILLS[(point, n)]}" in out
  if point == "manifest":       # Orbax finished step 4, its manifest was not written
    assert "checkpoint step 4 is damaged (no checksum manifest" in out
  assert _outputs(workdir) == runs["reference"]


def _strict_rows(workdir):
  """metrics.jsonl parsed as strict JSON (a bare NaN or Infinity fails)."""
  def refuse(text):
    raise ValueError(f"not JSON: {text}")
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line, parse_constant=refuse) for line in f]


def _largest_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs
           if f != checkpoint.MANIFEST]
  return max(files, key=os.path.getsize)


def test_damaged_checkpoints_fall_back_and_say_so(runs, tiny_gpt2_dir, data_roots, capsys):
  """A copied finished run whose newest checkpoint has flipped bytes (same size) and whose one
  before is truncated resumes from the one before those, saying so, and ends as the reference."""
  workdir = str(runs["root"] / "copy") + "/"        # another path, with a trailing slash
  shutil.copytree(runs["reference_dir"], workdir)
  assert checkpoint_steps(workdir) == [2, 4, 6]
  for step, damage in ((6, "flip"), (4, "truncate")):
    target = _largest_file(os.path.join(workdir, "checkpoints", str(step)))
    size = os.path.getsize(target)
    with open(target, "r+b") as f:
      blob = f.read()
      if damage == "flip":
        f.seek(len(blob) // 2)
        f.write(bytes(b ^ 0xFF for b in blob[len(blob) // 2:len(blob) // 2 + 64]))
      else:
        f.truncate(len(blob) // 2)
    assert (os.path.getsize(target) == size) == (damage == "flip")
  fewshot.run(_cfg(tiny_gpt2_dir, data_roots["good"], workdir, resume=True))
  out = capsys.readouterr().out
  assert "checkpoint step 6 is damaged (" in out and "does not match its checksum" in out
  assert "checkpoint step 4 is damaged (" in out and "resumed from step 2" in out
  assert all(os.path.isdir(os.path.join(workdir, "checkpoints.damaged", s)) for s in ("4", "6"))
  assert _outputs(workdir) == runs["reference"]


def test_learning_rate_that_blows_up_stops_with_one_line(tiny_gpt2_dir, data_roots, tmp_path,
                                                         capsys):
  workdir = tmp_path / "nan"
  cfg = _cfg(tiny_gpt2_dir, data_roots["good"], workdir, agent={"learning_rate": 1e30},
             checkpoint_every=1, eval_every=1)
  with pytest.raises(SystemExit) as e:
    cli.run_main(fewshot.run, cfg)
  assert e.value.code == 2
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and "non-finite" in lines[0] and "training stopped at step" in lines[0]
  stop = int(lines[0].split("training stopped at step ")[1].split(":")[0])
  assert not os.path.exists(workdir / "prompts.csv")
  assert not os.path.exists(workdir / "results.json")

  rows = _strict_rows(workdir)
  assert [r["step"] for r in rows] == list(range(1, stop))
  assert all("greedy_prompt" not in r or r["step"] < stop for r in rows)
  assert checkpoint_steps(workdir) == list(range(max(1, stop - 3), stop))   # the last good ones
  assert all(checkpoint.check_manifest(os.path.join(workdir, "checkpoints", str(s))) is None
             for s in checkpoint_steps(workdir))


def test_soft_prompt_that_blows_up_stops_with_one_line(tiny_gpt2_dir, data_roots, tmp_path,
                                                       capsys):
  from hpprompt.launch import soft_prompt  # noqa: PLC0415
  cfg = soft_prompt.BaselineConfig(task_lm=tiny_gpt2_dir, data_dir=data_roots["good"], steps=4,
                                   eval_every=1, checkpoint_every=1, prompt_length=2,
                                   learning_rate=1e30, workdir=str(tmp_path / "soft"))
  with pytest.raises(SystemExit) as e:
    cli.run_main(soft_prompt.run, cfg)
  lines = capsys.readouterr().err.splitlines()
  assert e.value.code == 2 and len(lines) == 1 and "non-finite" in lines[0], lines
  assert not os.path.exists(tmp_path / "soft" / "prompts.csv")
  stop = int(lines[0].split("training stopped at step ")[1].split(":")[0])
  assert [r["step"] for r in _strict_rows(tmp_path / "soft")] == list(range(1, stop))
