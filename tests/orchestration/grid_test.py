"""The results grid on tiny random models: every method on SST-2 (seed 0), and manual / PIN /
RLPrompt on MR over 2 seeds (13 cells, for CI time); skip / rerun / resume, the fair-budget rule,
the report's mean ± s.e., bad flags."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from hpprompt.agent import agent as agent_lib
from hpprompt.launch import cli
from hpprompt.launch import manual
from hpprompt.orchestration import grid
from hpprompt.report import runs as runs_lib
from hpprompt.tasks import data
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATASETS = ("sst-2", "mr")
SEEDS = (0, 1)
# Two invocations into one OUT: every method on SST-2 seed 0, then three methods on MR over 2 seeds.
ALL_METHODS = dict(datasets=("sst-2",), seeds=(0,), methods=grid.METHODS)
SEEDED = dict(datasets=("mr",), seeds=SEEDS, methods=("manual", "pin", "rlprompt"))


@pytest.fixture(scope="module")
def grid_data_dir(tmp_path_factory):
  """sst-2 and mr, splits 0 and 1, test sets cut to their first 16 sentences."""
  root = tmp_path_factory.mktemp("grid_data")
  for name in DATASETS:
    src = os.path.join(data.bundled_root(), name)
    for seed in SEEDS:
      folder = root / name / data.SEED_FOLDERS[seed]
      folder.mkdir(parents=True)
      for split in ("train", "dev"):
        shutil.copy(os.path.join(src, data.SEED_FOLDERS[seed], f"{split}.tsv"), folder)
    with open(os.path.join(src, "test.tsv"), encoding="utf-8") as f:
      (root / name / "test.tsv").write_text("".join(f.readlines()[:17]), encoding="utf-8")
  return str(root)


def _cfg(model_dir, data_dir, out, **kw):
  fewshot_fields = {"source_token": "<s>", "eval_every": 1, "checkpoint_every": 10,
                    "num_devices": 1,
                    "agent": dict(prompt_length=2, prompts_per_step=4, mlp_hidden=32,
                                  replay_batch=4, replay_capacity=64, filter_top_k=50)}
  kw = {"steps": 2, "rlprompt_prompts_per_step": 2, "datasets": DATASETS, "seeds": SEEDS,
        **kw}                                               # RLPrompt: 4 steps of 2 prompts
  return grid.GridConfig(
      out=str(out), data_dir=data_dir, task_lm=model_dir,
      policy_lm=model_dir, fewshot_fields=fewshot_fields,
      baseline_fields={"prompt_length": 2, "eval_every": 1, "checkpoint_every": 10,
                       "num_devices": 1}, **kw)


def _mtimes(out, names) -> dict:
  return {c: os.path.getmtime(os.path.join(out, c, "results.json")) for c in names}


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory):
  """JAX's persistent compilation cache for this module: the 13 cells compile the same programs
  (each launcher jits its own functions), so later cells load them instead of compiling."""
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
  before = [getattr(jax.config, n) for n in names]
  jax.config.update(names[0], str(tmp_path_factory.mktemp("jax_cache")))
  jax.config.update(names[1], 0.0)
  yield
  for name, value in zip(names, before):
    jax.config.update(name, value)


@pytest.fixture(scope="module")
def full_grid(tiny_gpt2_dir, grid_data_dir, tmp_path_factory, compilation_cache):
  out = tmp_path_factory.mktemp("grid")
  lines = []
  outcome = grid.run(_cfg(tiny_gpt2_dir, grid_data_dir, out, report_dir=str(out / "report_all"),
                          **ALL_METHODS), print_fn=lines.append)
  outcome.update(grid.run(_cfg(tiny_gpt2_dir, grid_data_dir, out, **SEEDED),
                          print_fn=lines.append))
  return out, outcome, lines


def test_every_cell_runs_and_the_report_is_written(full_grid):
  out, outcome, _ = full_grid
  assert len(outcome) == len(grid.METHODS) + len(SEEDS) * len(SEEDED["methods"])
  assert set(outcome.values()) == {"done"}, outcome
  for name in outcome:
    results = json.loads((out / name / "results.json").read_text())
    assert 0.0 <= results["test_accuracy"] <= 1.0, name
    config = json.loads((out / name / "config.json").read_text())
    dataset, cell = name.split("/")
    method, seed = cell.rsplit("_seed", 1)
    assert (config["label"], config["dataset"], config["seed"], config["dataset_seed"]) == (
        method, dataset, int(seed), int(seed))
  released = json.loads((out / "sst-2/infoprompt_released_seed0/config.json").read_text())
  assert released["method_config"]["prompt_generator"] and released["batch_size"] == 8
  assert released["method_config"]["warmup_fraction"] == 0.06
  report = (out / "report_all" / "report.md").read_text()
  for method in grid.METHODS:
    assert f"| {method} |" in report, method
  log = [json.loads(line) for line in (out / grid.LOG).read_text().splitlines()]
  assert [r["status"] for r in log] == ["done"] * len(outcome)


def test_manual_cell_is_the_best_bundled_prompt_on_dev(full_grid):
  out, _, _ = full_grid
  results = json.loads((out / "mr/manual_seed1/results.json").read_text())
  bundled = [r["prompt"] for r in manual.bundled_prompts("mr")]
  scores = {r["prompt"]: r["score"] for r in results["top_prompts"]}
  assert sorted(scores) == sorted(bundled)
  best = max(bundled, key=lambda p: (scores[p], -bundled.index(p)))   # ties: first listed
  assert results["best"]["prompt"] == best and results["best"]["perplexity"] > 1.0


def test_second_invocation_does_nothing_and_a_deleted_cell_alone_reruns(
    tiny_gpt2_dir, grid_data_dir, full_grid, monkeypatch):
  """Then: the deleted cell interrupted by Ctrl-C, resumed by the next invocation, ends exactly as
  the uninterrupted original."""
  out, _, _ = full_grid
  cfg = _cfg(tiny_gpt2_dir, grid_data_dir, out, report=False, **SEEDED)
  names = [n for n in full_grid[1] if n.startswith("mr/")]
  before = _mtimes(out, names)
  outcome = grid.run(cfg, print_fn=lambda _: 0)
  assert set(outcome.values()) == {"skipped"} and _mtimes(out, names) == before
  drop = ("time_sample", "time_reward", "time_learn", "reward_flops", "reward_flops_per_s")
  cell = out / "mr/pin_seed0"
  original = launch_utils.read_metrics(cell, drop)
  original_results = json.loads((cell / "results.json").read_text())
  shutil.rmtree(cell)
  restore = launch_utils.interrupt_on_call(monkeypatch, agent_lib.PromptAgent, "learn", 1,
                                           "sigint")
  with pytest.raises(grid.Interrupted):
    grid.run(cfg, print_fn=lambda _: 0)
  restore()
  lines = []
  assert grid.run(dataclasses.replace(cfg, dry_run=True, only=("mr/pin_seed0",)),
                  print_fn=lines.append) == {"mr/pin_seed0": "partial"}
  assert "checkpoint step 1/2" in lines[0]
  outcome = grid.run(cfg, print_fn=lines.append)
  assert [n for n, o in outcome.items() if o != "skipped"] == ["mr/pin_seed0"]
  assert outcome["mr/pin_seed0"] == "done" and any("mr/pin_seed0: resuming" in x for x in lines)
  after = _mtimes(out, names)
  assert {n for n in after if after[n] != before[n]} == {"mr/pin_seed0"}
  assert launch_utils.read_metrics(cell, drop) == original
  results = json.loads((cell / "results.json").read_text())
  assert results["best"] == original_results["best"]
  assert results["test_accuracy"] == original_results["test_accuracy"]


def test_fair_budget_rule(full_grid):
  assert grid.fair_steps(200, 8, 8) == 200 and grid.fair_steps(200, 8, 16) == 100
  assert grid.fair_steps(6, 4, 3) == 8      # 24 prompts scored by PIN, 24 by RLPrompt
  assert grid.fair_steps(5, 3, 2) == 8      # 15 -> 16: never fewer than PIN's
  for steps, pin_k, k in np.random.default_rng(0).integers(1, 40, (50, 3)):
    fair = grid.fair_steps(steps, pin_k, k)
    assert (fair - 1) * k < steps * pin_k <= fair * k
  # The CPU defaults: PIN and RLPrompt both 8 prompts a step, so 200 steps each.
  cell = grid.cells(grid.GridConfig(methods=("rlprompt",), datasets=("sst-2",), seeds=(0,)))[0]
  assert cell.config.steps == 200 and cell.config.notes["fair_budget"]["pin_prompts_scored"] == 1600
  # The tiny grid: PIN 2 steps x 4 prompts, RLPrompt 2 prompts a step -> 4 steps, in config.json.
  out, _, _ = full_grid
  config = json.loads((out / "mr/rlprompt_seed1/config.json").read_text())
  budget = config["notes"]["fair_budget"]
  assert (budget["pin_steps"], budget["pin_prompts_per_step"]) == (2, 4)
  assert (budget["rlprompt_prompts_per_step"], budget["rlprompt_steps"]) == (2, 4)
  assert budget["pin_prompts_scored"] == budget["rlprompt_prompts_scored"] == 8
  assert config["steps"] == 4 and config["agent_config"]["prompts_per_step"] == 2
  assert len(launch_utils.read_metrics(out / "mr/rlprompt_seed1")) == 4


def test_report_mean_and_standard_error_by_hand(full_grid):
  out, _, _ = full_grid
  accs = [json.loads((out / f"mr/pin_seed{s}/results.json").read_text())["test_accuracy"]
          for s in SEEDS]
  mean = (accs[0] + accs[1]) / 2
  se = abs(accs[0] - accs[1]) / 2        # sample std / sqrt(2) for two values
  assert runs_lib.mean_se(accs) == pytest.approx((mean, se))
  report = (out / "report" / "report.md").read_text()
  mr = report.split("## mr\n", 1)[1]
  row = next(line for line in mr.splitlines() if line.startswith("| pin |"))
  assert f"{mean:.4f} ± {se:.4f}" in row


def test_failing_cells_are_recorded_and_the_grid_goes_on(tiny_gpt2_dir, grid_data_dir, tmp_path):
  cfg = dataclasses.replace(_cfg(tiny_gpt2_dir, grid_data_dir, tmp_path / "g", report=False),
                            datasets=("sst-2",), seeds=(0,), methods=("soft", "pez"),
                            baseline_fields={"init": "nope"})
  outcome = grid.run(cfg, print_fn=lambda _: 0)
  assert list(outcome) == ["sst-2/soft_seed0", "sst-2/pez_seed0"]
  assert all(o.startswith("failed: error: --init") for o in outcome.values()), outcome
  log = [json.loads(line) for line in (tmp_path / "g" / grid.LOG).read_text().splitlines()]
  assert [(r["cell"], r["status"]) for r in log] == [(n, "failed") for n in outcome]
  lines = []
  grid.run(dataclasses.replace(cfg, dry_run=True), print_fn=lines.append)
  assert all("todo (last attempt failed: error: --init" in line for line in lines[:2])


@pytest.mark.parametrize("args, flag", [
    (["--methods=pin,ppo"], "--methods"),
    (["--seeds=a"], "--seeds"),
    (["--only=sst-2/nothing*"], "--only"),
])
def test_bad_flags_one_line_exit_2(args, flag, tmp_path):
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "results_grid.py"),
                         f"--out={tmp_path}/g", "--dry_run", *args], capture_output=True,
                        text=True, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: {flag}: "), proc.stderr


@pytest.mark.parametrize("change, flag", [
    (dict(datasets=("nope",)), "datasets"),
    (dict(datasets=("mine.csv",)), "datasets"),       # your own data: no manual prompts
    (dict(seeds=(0, 7)), "seeds"),
    (dict(dataset_seed=9), "dataset_seed"),
    (dict(steps=0), "steps"),
    (dict(rlprompt_prompts_per_step=0), "rlprompt_prompts_per_step"),
    (dict(methods=()), "methods"),
    (dict(fewshot_fields={"agent": {"loss": "v9"}}), "loss"),
    (dict(report_only=True, dry_run=True), "report_only"),
    (dict(report_only=True, report=False), "report_only"),
])
def test_bad_settings_name_the_flag(change, flag):
  with pytest.raises(cli.FlagError) as e:
    grid.check(dataclasses.replace(grid.GridConfig(), **change))
  assert e.value.flag == flag, str(e.value)


def test_report_only_runs_nothing_and_keeps_the_grid_order(tiny_gpt2_dir, grid_data_dir, full_grid,
                                                           tmp_path):
  out, _, _ = full_grid
  log_before = (out / grid.LOG).read_text()
  cfg = _cfg(tiny_gpt2_dir, grid_data_dir, out, methods=grid.METHODS, report_only=True,
             report_dir=str(tmp_path / "report"))
  lines = []
  outcome = grid.run(cfg, print_fn=lines.append)
  assert {n for n, o in outcome.items() if o == "todo"} == {
      f"sst-2/{m}_seed1" for m in grid.METHODS} | {
      f"mr/{m}_seed{s}" for m in grid.METHODS if m not in SEEDED["methods"] for s in SEEDS}
  assert not (out / "sst-2" / "pin_seed1").exists() and (out / grid.LOG).read_text() == log_before
  assert lines == [f"[grid] report of 13 finished cells (of {len(outcome)}): "
                   f"{tmp_path / 'report' / 'report.md'}"]
  report = (tmp_path / "report" / "report.md").read_text()
  summary = report.split("## all tasks\n", 1)[1].split("\n## ", 1)[0]
  methods = [line.split("|")[1].strip() for line in summary.splitlines()
             if line.startswith("| ") and not line.startswith(("| method", "| ---"))]
  assert methods == list(grid.METHODS)                       # the grid's order, not the alphabet
  assert "--report_only" in report.splitlines()[2]
  with pytest.raises(cli.FlagError) as e:
    grid.run(dataclasses.replace(cfg, out=str(tmp_path / "empty")))
  assert e.value.flag == "report_only"


def test_report_only_without_finished_cells_one_line_exit_2(tmp_path):
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "results_grid.py"),
                         f"--out={tmp_path}/empty", "--report_only"], capture_output=True,
                        text=True, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert lines == [f"error: --report_only: no finished cell in {tmp_path}/empty to report."], lines
