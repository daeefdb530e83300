"""The results grid's status: each cell done / partial / to do, the dry run's estimate of the
minutes left, and the grid's log of attempts (`OUT/grid_log.jsonl`)."""
import json
import os

from hpprompt.launch import fewshot
from hpprompt.launch import manual
from hpprompt.launch import soft_prompt
from hpprompt.tasks import data
from hpprompt.training.run import saved_steps

AGENT_METHODS = ("pin", "rlprompt", "pin_init")
# Minutes per cell on a 2-core CPU with SmolLM2-135M on SST-2 (1,821 test sentences): (training,
# test evaluation). From the README's and docs/baselines_results.md's measured runs; the dry run's
# estimate scales the evaluation by the test set's size and the training by the steps left.
MINUTES = {"manual": (0.3, 3.5), "pin": (4.4, 3.5), "pin_init": (4.4, 3.5),   # pin_init: as PIN
           "rlprompt": (6.3, 3.5), "soft": (2.3, 3.0),
           "infoprompt": (1.6, 2.2), "infoprompt_released": (1.6, 2.2), "pez": (1.6, 3.3)}
SST2_TEST = 1821
LOG = "grid_log.jsonl"


# ---- status --------------------------------------------------------------------------------------

def _results(workdir: str) -> dict:
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      value = json.load(f)
    return value if isinstance(value, dict) else {}
  except (OSError, ValueError):
    return {}


def status(workdir: str) -> str:
  """'done' (results.json with a test metric), 'partial' (a checkpoint or a started run), 'todo'."""
  if any(k.startswith("test_") for k in _results(workdir)):
    return "done"
  if saved_steps(workdir) or os.path.exists(os.path.join(workdir, "config.json")):
    return "partial"
  return "todo"


def _test_size(cfg, dataset: str) -> int:
  try:
    return len(data.load_few_shot(dataset, 0, "test", cfg.data_dir))
  except data.DataError:
    return SST2_TEST


def estimate_minutes(cell, test_size: int) -> float:
  """Minutes left for a cell on a 2-core CPU with SmolLM2 (MINUTES scaled; 0 when done)."""
  state = status(cell.workdir)
  if state == "done":
    return 0.0
  train, evaluate = MINUTES[cell.method]
  default_steps = (fewshot.FewShotConfig.steps if cell.method in AGENT_METHODS
                   else manual.ManualConfig.steps if cell.method == "manual"
                   else soft_prompt.BaselineConfig.steps)
  steps = cell.config.steps or default_steps
  done = saved_steps(cell.workdir)[0] if saved_steps(cell.workdir) else 0
  left = max(0, steps - done) / steps if cell.method != "manual" else 1.0
  return train * left * steps / default_steps + evaluate * test_size / SST2_TEST


def last_attempts(out: str) -> dict:
  """{cell name: its last record in OUT/grid_log.jsonl}."""
  records = {}
  try:
    with open(os.path.join(out, LOG)) as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:
          continue
        records[record.get("cell")] = record
  except OSError:
    pass
  return records


def describe(cfg, grid: list) -> list[str]:
  """The dry run's lines: each cell, its status and estimated minutes left, then the totals."""
  last = last_attempts(cfg.out)
  sizes = {d: _test_size(cfg, d) for d in cfg.datasets}
  lines, total, counts = [], 0.0, {"done": 0, "partial": 0, "todo": 0}
  width = max(len(c.name) for c in grid)
  for cell in grid:
    state = status(cell.workdir)
    counts[state] += 1
    minutes = estimate_minutes(cell, sizes[cell.dataset])
    total += minutes
    detail = state
    if state == "partial" and saved_steps(cell.workdir):
      detail += f" (checkpoint step {saved_steps(cell.workdir)[0]}/{cell.config.steps})"
    record = last.get(cell.name)
    if state != "done" and record and record.get("status") == "failed":
      detail += f" (last attempt failed: {record.get('error', '')[:80]})"
    lines.append(f"{cell.name:<{width}}  {detail:<40}  ~{minutes:5.1f} min")
  lines.append(f"{len(grid)} cells: {counts['done']} done, {counts['partial']} partial, "
               f"{counts['todo']} to do; estimated {total / 60:.1f} h on a 2-core CPU with "
               "SmolLM2-135M (grid.MINUTES: the README's idle-machine runs on SST-2)")
  return lines
