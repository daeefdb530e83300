"""Reading run directories of any launcher, and aggregating them over seeds.

A run directory (`hpprompt.training.run.Run`) holds `config.json` and `metrics.jsonl`, and once the
run has finished `results.json` and `prompts.csv`. The reader assumes nothing about the launcher:
the task and method come from `config.json`, the validation metric from the metrics records (the
agent's trainer logs `task.validation_metric` at evaluation steps; the soft-prompt baselines log
`dev_<metric>`), the test metrics are the numeric top-level entries of `results.json`.
"""
import csv
import dataclasses
import json
import math
import os

import numpy as np

# Numeric results entries that describe the run, not the prompt's test performance.
_BOOKKEEPING_SUFFIXES = ("_seconds", "_examples", "_step", "steps", "seed")
_NOT_TEST_PREFIXES = ("best_", "final_", "target_", "train_", "dev_", "val")
_VALIDATION_PREFIXES = ("dev_", "val_", "valid", "validation")


class NotARunError(ValueError):
  """A directory without the files of a run."""


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass
class RunData:
  """One run directory's files."""
  path: str
  config: dict
  metrics: list[dict]
  results: dict
  prompts: list[dict]

  @property
  def name(self) -> str:
    return os.path.basename(os.path.normpath(self.path))

  @property
  def task(self) -> str:
    """The task the run solved: config's `task` (+ `dataset`), else its `dataset`."""
    task, dataset = self.config.get("task"), self.config.get("dataset")
    if task and dataset and dataset not in str(task):
      return f"{task} ({dataset})"
    return str(task or dataset or "unknown task")

  @property
  def method(self) -> str:
    """config's `label` (e.g. the results grid's 'infoprompt_released'), else its `method`."""
    return str(self.config.get("label") or self.config.get("method", "unknown method"))

  @property
  def seed(self):
    return self.config.get("seed")

  @property
  def lms(self) -> dict:
    """{config key: model name} of every LM the run used (policy_lm, task_lm, ...)."""
    return {k: v for k, v in sorted(self.config.items())
            if k.endswith("_lm") and isinstance(v, str)}

  @property
  def validation_metric(self) -> str | None:
    """The validation score's key in the metrics records (None if the run logged none)."""
    named = self.results.get("validation_metric") or self.config.get("validation_metric")
    if named:
      return named
    keys = [k for r in self.metrics for k, v in r.items() if _number(v)]
    keys = list(dict.fromkeys(keys))
    primary = self.results.get("metric")   # soft-prompt baselines: "accuracy" or "mcc"
    if primary and f"dev_{primary}" in keys:
      return f"dev_{primary}"
    return next((k for k in keys if k.lower().startswith(_VALIDATION_PREFIXES)), None)

  @property
  def test_metrics(self) -> dict[str, float]:
    """Numeric top-level entries of results.json: the `test_*` ones when there are any, else all
    but bookkeeping (steps, seconds, example counts) and training / validation scores."""
    numeric = {k: float(v) for k, v in self.results.items()
               if _number(v) and not k.endswith(_BOOKKEEPING_SUFFIXES)}
    test = {k: v for k, v in numeric.items() if k.startswith("test_")}
    return test or {k: v for k, v in numeric.items() if not k.startswith(_NOT_TEST_PREFIXES)}

  @property
  def best_prompt(self) -> str | None:
    best = self.results.get("best")
    if isinstance(best, dict) and "prompt" in best:
      return best["prompt"]
    if isinstance(self.results.get("prompt"), str):
      return self.results["prompt"]
    return self.prompts[0]["prompt"] if self.prompts else None

  @property
  def perplexity(self) -> float | None:
    """Perplexity of the best prompt, where the run measured it."""
    best = self.results.get("best")
    for value in ((best or {}).get("perplexity") if isinstance(best, dict) else None,
                  self.results.get("perplexity"),
                  self.prompts[0].get("perplexity") if self.prompts else None):
      if value not in (None, ""):
        return float(value)
    return None

  @property
  def steps(self) -> int:
    done = max((int(r["step"]) for r in self.metrics), default=0)
    return int(self.results.get("steps", done))

  @property
  def train_seconds(self) -> float | None:
    """results' `train_seconds`, else the sum of the per-step timings."""
    if _number(self.results.get("train_seconds")):
      return float(self.results["train_seconds"])
    total = sum(v for r in self.metrics for k, v in r.items()
                if k.startswith("time_") and _number(v))
    return total or None

  def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that hold a number under `key`."""
    rows = [(r["step"], r[key]) for r in self.metrics if _number(r.get(key))]
    steps = np.asarray([s for s, _ in rows], np.int64)
    return steps, np.asarray([v for _, v in rows], np.float64)

  def total(self, key: str) -> float | None:
    """Sum of `key` over the metrics records (None if no record has it), e.g. the task-LM FLOPs
    of the prompts scored in training (`reward_flops`: memoised prompts cost nothing)."""
    values = self.series(key)[1]
    return float(values.sum()) if values.size else None

  def first_last(self, key: str, fraction: float = 0.1) -> tuple[float, float] | None:
    """Means of `key` over the first and the last `fraction` of its records (at least one each):
    how far training moved it. None without records."""
    values = self.series(key)[1]
    if not values.size:
      return None
    n = max(1, int(len(values) * fraction))
    return float(values[:n].mean()), float(values[-n:].mean())

  def timings(self) -> dict[str, float]:
    """Median seconds per step of each `time_*` entry (robust to the compiling first steps)."""
    keys = dict.fromkeys(k for r in self.metrics for k in r if k.startswith("time_"))
    values = {k[len("time_"):]: self.series(k)[1] for k in keys}
    return {k: float(np.median(v)) for k, v in values.items() if len(v)}


def load_run(path: str) -> RunData:
  """Reads a run directory; NotARunError (one line) when it is not one."""
  if not os.path.isdir(path):
    raise NotARunError(f"{path} is not a directory.")
  missing = [f for f in ("config.json", "metrics.jsonl")
             if not os.path.isfile(os.path.join(path, f))]
  if missing:
    raise NotARunError(f"{path} is not a run directory (no {' or '.join(missing)}).")
  try:
    with open(os.path.join(path, "config.json")) as f:
      config = json.load(f)
    with open(os.path.join(path, "metrics.jsonl")) as f:
      metrics = [json.loads(line) for line in f if line.strip()]
    results = {}
    if os.path.isfile(os.path.join(path, "results.json")):
      with open(os.path.join(path, "results.json")) as f:
        results = json.load(f)
  except json.JSONDecodeError as e:
    raise NotARunError(f"{path}: unreadable run file ({e}).") from e
  if not isinstance(config, dict) or not isinstance(results, dict):
    raise NotARunError(f"{path}: config.json and results.json must hold JSON objects.")
  prompts = []
  if os.path.isfile(os.path.join(path, "prompts.csv")):
    with open(os.path.join(path, "prompts.csv"), newline="") as f:
      prompts = list(csv.DictReader(f))
  return RunData(path, config, metrics, results, prompts)


def mean_se(values) -> tuple[float, float | None]:
  """Mean and standard error (sample std / sqrt(n); None for a single value)."""
  values = np.asarray(values, np.float64)
  if len(values) < 2:
    return float(values.mean()), None
  return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def group_runs(runs: list[RunData]) -> dict[str, dict[str, list[RunData]]]:
  """{task: {method: [runs, ordered by seed]}} in order of first appearance. Runs of one method
  with different LMs form separate groups, labelled `method [LM, ...]`."""
  keyed: dict[str, dict[tuple, list[RunData]]] = {}
  for run in runs:
    key = (run.method, tuple(run.lms.values()))
    keyed.setdefault(run.task, {}).setdefault(key, []).append(run)
  out = {}
  for task, groups in keyed.items():
    methods = [m for m, _ in groups]
    out[task] = {}
    for (method, lms), group in groups.items():
      label = method if methods.count(method) == 1 else f"{method} [{', '.join(lms)}]"
      out[task][label] = sorted(group, key=lambda r: (str(r.seed), r.path))
  return out


def band(runs: list[RunData], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
  """(steps, mean, standard error) of `key` over the runs, on the steps every run logged it
  (standard error 0 with a single run); None if no run logged it."""
  series = [r.series(key) for r in runs]
  series = [s for s in series if len(s[0])]
  if not series:
    return None
  common = sorted(set.intersection(*(set(s.tolist()) for s, _ in series)))
  if not common:
    return None
  values = np.stack([v[np.searchsorted(s, common)] for s, v in series])
  se = values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros(len(common))
  return np.asarray(common), values.mean(0), se


def mean_timings(runs: list[RunData]) -> dict[str, float]:
  """Per phase: the mean over runs of each run's median seconds per step."""
  per_run = [r.timings() for r in runs]
  phases = dict.fromkeys(p for t in per_run for p in t)
  return {p: float(np.mean([t[p] for t in per_run if p in t])) for p in phases}
