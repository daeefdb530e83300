"""The results grid over several machines: two processes with --shard=0/2 and 1/2 on one output
folder run the cells of a 4-cell tiny grid (manual and PIN, SST-2, seeds 0 and 1) once each, and
give the same cells as one process; then one report covers them. The `pin_init` arm's starting
prompt, selected again without the manual cell, is the manual cell's choice."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from hpprompt.orchestration import grid
from hpprompt.orchestration import grid_init
from tests import launch_utils
from tests.orchestration.grid_test import grid_data_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CELLS = ["sst-2/manual_seed0", "sst-2/pin_seed0", "sst-2/manual_seed1", "sst-2/pin_seed1"]
_TIMES = ("train_seconds", "time_sample", "time_reward", "time_learn", "reward_flops_per_s")


def _fields(model_dir, data_dir, out) -> dict:
  agent = dict(prompt_length=2, prompts_per_step=4, mlp_hidden=32, replay_batch=4,
               replay_capacity=64, filter_top_k=50)
  return {"datasets": ["sst-2"], "seeds": [0, 1], "methods": ["manual", "pin"],
          "out": str(out), "data_dir": data_dir, "task_lm": model_dir, "policy_lm": model_dir,
          "steps": 2, "fewshot_fields": {"source_token": "<s>", "eval_every": 1,
                                         "num_devices": 1, "agent": agent},
          "baseline_fields": {}, "report": False}


def _start(fields: dict, path) -> subprocess.Popen:
  path.write_text(json.dumps(fields))
  return subprocess.Popen([sys.executable, "-m", "tests.orchestration.grid_worker", str(path)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _cell(out, name) -> dict:
  with open(os.path.join(out, name, "results.json")) as f:
    results = {k: v for k, v in json.load(f).items() if k not in _TIMES}
  with open(os.path.join(out, name, "config.json")) as f:
    config = {k: v for k, v in json.load(f).items() if k not in ("workdir", "run_id")}
  return {"results": results, "config": config,
          "metrics": launch_utils.read_metrics(os.path.join(out, name), drop=_TIMES)}


def test_two_shards_give_the_cells_of_one_process(tiny_gpt2_dir, grid_data_dir,  # noqa: F811
                                                  tmp_path):
  shards = [_start({**_fields(tiny_gpt2_dir, grid_data_dir, tmp_path / "two"), "shard": [i, 2]},
                   tmp_path / f"shard{i}.json") for i in range(2)]
  one = _start(_fields(tiny_gpt2_dir, grid_data_dir, tmp_path / "one"), tmp_path / "one.json")
  logs = [p.communicate(timeout=1200)[0] for p in shards + [one]]
  assert [p.returncode for p in shards + [one]] == [0, 0, 0], "\n".join(logs)[-4000:]
  # each shard ran its own cells (i, i + 2, ...) and no other; each cell was run once
  for i, log in enumerate(logs[:2]):
    started = [c for c in CELLS if f"{c}: starting" in log]
    assert started == CELLS[i::2], log[-2000:]
    assert "--report_only" in log.splitlines()[-1]
  with open(tmp_path / "two" / grid.LOG) as f:
    attempts = [json.loads(line) for line in f]
  assert sorted(a["cell"] for a in attempts) == sorted(CELLS)
  assert all(a["status"] == "done" for a in attempts)
  for name in CELLS:
    assert _cell(tmp_path / "two", name) == _cell(tmp_path / "one", name), name
  # pin_init's starting prompt: the finished manual cell's choice, or the same selection made again
  cfg = grid.GridConfig(**{**_fields(tiny_gpt2_dir, grid_data_dir, tmp_path / "none"),
                           "datasets": ("sst-2",), "seeds": (0, 1), "methods": ("pin_init",)})
  for cell in grid.cells(cfg):
    chosen = _cell(tmp_path / "one", f"sst-2/manual_seed{cell.seed}")["results"]["best"]["prompt"]
    assert grid_init.manual_choice(cell.manual) == chosen
    done = dataclasses.replace(cell.manual, workdir=str(tmp_path / "one" / "sst-2" /
                                                        f"manual_seed{cell.seed}"))
    assert grid_init.manual_choice(done) == chosen
  # a rerun of a shard skips its finished cells; one report over the shared folder
  again = _start({**_fields(tiny_gpt2_dir, grid_data_dir, tmp_path / "two"), "shard": [1, 2]},
                 tmp_path / "again.json")
  assert again.communicate(timeout=600)[0].count("starting") == 0
  cfg = grid.GridConfig(**{**_fields(tiny_gpt2_dir, grid_data_dir, tmp_path / "two"),
                           "datasets": ("sst-2",), "seeds": (0, 1),
                           "methods": ("manual", "pin"), "report_only": True,
                           "report": True})
  assert grid.run(dataclasses.replace(cfg), print_fn=lambda _: None) == {c: "done" for c in CELLS}
  assert os.path.exists(tmp_path / "two" / "report" / "report.md")
