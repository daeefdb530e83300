"""Run directories across launchers: two real processes on one --workdir (the second refuses in one
line naming the first's process id; a killed run's lock is taken over), a directory held by a live
process refused by every launcher, planted symbolic links refused before anything is written, and
--resume with fewer steps than done refused."""
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.training import lock

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "experiments", "fewshot_classification.py")


def _flags(model_dir, data_dir, workdir, *extra):
  return [f"--task_lm={model_dir}", f"--policy_lm={model_dir}", "--source_token=<s>",
          "--steps=4", "--eval_every=2", "--checkpoint_every=2", "--prompt_length=2",
          "--prompts_per_step=4", "--mlp_hidden=16", "--replay_batch=4", "--replay_capacity=16",
          "--filter_top_k=50", f"--data_dir={data_dir}", f"--workdir={workdir}", *extra]


def _launch(args, **kw):
  return subprocess.Popen([sys.executable, *args], cwd=REPO, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": REPO}, **kw)


def _wait_for(path, proc, seconds=300):
  end = time.time() + seconds
  while not os.path.exists(path):
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < end, f"{path} did not appear"
    time.sleep(0.1)


@pytest.fixture(scope="module")
def two_runs(tiny_gpt2_dir, data_roots, tmp_path_factory):
  """Run A waits at its first step while B (a fresh run) and C (--resume) start on its workdir;
  then A is killed (kill -9: its lock file stays) and this process runs the directory to the end
  (through the launcher's error boundary, which releases the lock)."""
  root = tmp_path_factory.mktemp("two_runs")
  workdir, go = root / "w", str(root / "go")
  flags = _flags(tiny_gpt2_dir, data_roots["good"], workdir)
  first = _launch(["-m", "tests.launch.hold_worker", go, SCRIPT, *flags])
  _wait_for(go + ".waiting", first)
  held = json.loads((workdir / lock.LOCK_NAME).read_text())
  second, third = _launch([SCRIPT, *flags]), _launch([SCRIPT, *flags, "--resume"])
  refusals = [p.communicate(timeout=300) + (p.returncode,) for p in (second, third)]
  metrics_while_held = (workdir / "metrics.jsonl").exists()
  first.kill()
  first.communicate(timeout=60)
  stale = json.loads((workdir / lock.LOCK_NAME).read_text())
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    cli.run_main(fewshot.run, _cfg(tiny_gpt2_dir, data_roots["good"], workdir))
  out = out.getvalue()
  return {"workdir": workdir, "first": first, "held": held, "refusals": refusals,
                  "metrics_while_held": metrics_while_held, "stale": stale, "last_out": out}


def test_second_process_refuses_in_one_line_naming_the_holder(two_runs):
  assert two_runs["held"]["pid"] == two_runs["first"].pid
  for out, err, code in two_runs["refusals"]:            # a fresh run and a --resume
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"error: --workdir: {two_runs['workdir']} is in use by process "
                               f"{two_runs['first'].pid} on host {socket.gethostname()}"), lines
  assert not two_runs["metrics_while_held"]              # A waits at its first record


def test_killed_runs_lock_is_taken_over_and_released_at_the_end(two_runs):
  assert two_runs["stale"]["pid"] == two_runs["first"].pid       # kill -9 left the file
  assert (f"was locked by process {two_runs['first'].pid} on host {socket.gethostname()}"
          in two_runs["last_out"])
  assert not (two_runs["workdir"] / lock.LOCK_NAME).exists()
  rows = [json.loads(line) for line in (two_runs["workdir"] / "metrics.jsonl").open()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]             # one run's records, not two


def _cfg(model_dir, data_dir, workdir, **kw):
  agent = dict(prompt_length=2, prompts_per_step=4, mlp_hidden=16, replay_batch=4,
               replay_capacity=16, filter_top_k=50)
  return fewshot.FewShotConfig(task_lm=model_dir, policy_lm=model_dir, data_dir=data_dir,
                               workdir=str(workdir), source_token="<s>", agent=agent,
                               **{"steps": 4, "eval_every": 2, "checkpoint_every": 2, **kw})


def _one_line_exit_2(capfd, fn, cfg) -> str:
  capfd.readouterr()
  with pytest.raises(SystemExit) as e:
    cli.run_main(fn, cfg)
  err = capfd.readouterr().err
  assert e.value.code == 2 and len(err.splitlines()) == 1, err[-3000:]
  return err.strip()


def test_resume_with_fewer_steps_than_done_is_refused(two_runs, tiny_gpt2_dir, data_roots,
                                                      capfd):
  workdir = two_runs["workdir"]
  before = {n: (workdir / n).read_bytes() for n in ("config.json", "results.json",
                                                     "metrics.jsonl", "prompts.csv")}
  line = _one_line_exit_2(capfd, fewshot.run, _cfg(tiny_gpt2_dir, data_roots["good"], workdir,
                                                   resume=True, steps=2))
  assert line.startswith("error: --steps: 2 is fewer than the 4 steps the run in"), line
  assert {n: (workdir / n).read_bytes() for n in before} == before


def test_planted_metrics_link_is_refused_on_resume(two_runs, tiny_gpt2_dir, data_roots, capfd,
                                                   tmp_path):
  workdir = tmp_path / "copy"
  subprocess.run(["cp", "-a", str(two_runs["workdir"]), str(workdir)], check=True)
  outside = tmp_path / "outside.txt"
  outside.write_text("not yours\n")
  os.remove(workdir / "metrics.jsonl")
  os.symlink(outside, workdir / "metrics.jsonl")
  line = _one_line_exit_2(capfd, fewshot.run, _cfg(tiny_gpt2_dir, data_roots["good"], workdir,
                                                   resume=True, steps=6))
  assert line == (f"error: --workdir: {workdir}/metrics.jsonl is a symbolic link (to {outside}); "
                  "a run writes its files itself: remove the link or choose another --workdir.")
  assert outside.read_text() == "not yours\n" and not (workdir / lock.LOCK_NAME).exists()


@pytest.fixture
def live_holder():
  """A live process whose id a planted lock file names (it holds no flock: the record decides)."""
  proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  yield proc.pid
  proc.kill()
  proc.wait()


def _plant_lock(directory, pid):
  os.makedirs(directory, exist_ok=True)
  (directory / lock.LOCK_NAME).write_text(json.dumps(
      {"pid": pid, "host": socket.gethostname(), "start": lock.process_start(pid)}))


def _launchers(model_dir, data_dir, tmp_path):
  """(run function, config, directory the lock is checked in) of every launcher with a run dir."""
  from hpprompt.orchestration import grid  # noqa: PLC0415
  from hpprompt.launch import manual  # noqa: PLC0415
  from hpprompt.launch import soft_prompt  # noqa: PLC0415
  from hpprompt.launch import style_transfer  # noqa: PLC0415
  from hpprompt.launch import textual_inversion  # noqa: PLC0415
  w = tmp_path / "w"
  image = os.path.join(textual_inversion.BUNDLED_IMAGES,
                       sorted(n for n in os.listdir(textual_inversion.BUNDLED_IMAGES)
                              if n.endswith((".png", ".jpg")))[0])
  return {
      "fewshot": (fewshot.run, _cfg(model_dir, data_dir, w), w),
      "soft_prompt": (soft_prompt.run, soft_prompt.BaselineConfig(
          task_lm=model_dir, data_dir=data_dir, steps=2, prompt_length=2, workdir=str(w)), w),
      "manual": (manual.run, manual.ManualConfig(task_lm=model_dir, data_dir=data_dir,
                                                 workdir=str(w)), w),
      "style_transfer": (style_transfer.run, style_transfer.StyleTransferConfig(
          task_lm=model_dir, policy_lm=model_dir, source_token="<s>", workdir=str(w)), w),
      "textual_inversion": (textual_inversion.run, textual_inversion.TextualInversionConfig(
          method="pez", clip="tiny", policy_lm=model_dir, image=image, steps=2,
          pez={"prompt_length": 2}, workdir=str(w)),
          w / textual_inversion._target_dir(  # noqa: SLF001
              textual_inversion.TextualInversionConfig(workdir=""), 0, image)),
      "results_grid": (grid.run, grid.GridConfig(
          out=str(w), data_dir=data_dir, task_lm=model_dir, policy_lm=model_dir,
          datasets=("sst-2",), seeds=(0,), methods=("manual",)), w),
  }


@pytest.mark.parametrize("launcher", ["fewshot", "soft_prompt", "manual", "style_transfer",
                                      "textual_inversion", "results_grid"])
def test_every_launcher_refuses_a_directory_held_by_a_live_process(
    launcher, live_holder, tiny_gpt2_dir, data_roots, tmp_path, capfd):
  fn, cfg, directory = _launchers(tiny_gpt2_dir, data_roots["good"], tmp_path)[launcher]
  _plant_lock(directory, live_holder)
  line = _one_line_exit_2(capfd, fn, cfg)
  assert f"{directory} is in use by process {live_holder} on host" in line, line
  assert os.listdir(directory) == [lock.LOCK_NAME]         # nothing written beside it


def test_style_transfer_refuses_a_planted_test_outputs_link(tiny_gpt2_dir, data_roots, tmp_path,
                                                            capfd):
  from hpprompt.launch import style_transfer  # noqa: PLC0415
  outside = tmp_path / "outside.txt"
  outside.write_text("not yours\n")
  os.makedirs(tmp_path / "w")
  os.symlink(outside, tmp_path / "w" / "test_outputs.0to1.txt")
  cfg = _launchers(tiny_gpt2_dir, data_roots["good"], tmp_path)["style_transfer"][1]
  line = _one_line_exit_2(capfd, style_transfer.run, cfg)
  assert "w/test_outputs.0to1.txt is a symbolic link" in line, line
  assert outside.read_text() == "not yours\n"
  assert os.listdir(tmp_path / "w") == ["test_outputs.0to1.txt"]
