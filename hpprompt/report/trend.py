"""Did a run learn? Its per-step training reward's change from the first to the last steps.

Two intervals for the change (last - first): a percentile bootstrap that resamples the steps of
each window (each step's reward is the mean over its prompts and outputs), and the ordinary
least-squares slope of the per-step reward on the step over the whole run (t interval).
"""
import json
import math
import os

import numpy as np
from scipy import stats


def step_rewards(workdir: str, key: str = "raw_reward") -> np.ndarray:
  """A per-step metric of a run (default the mean training reward `raw_reward`), in step order."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = sorted((json.loads(line) for line in f), key=lambda r: r["step"])
  return np.asarray([r[key] for r in rows], np.float64)


def first_last(rewards: np.ndarray, fraction: float = 0.2, boots: int = 10_000,
               seed: int = 0) -> dict:
  """Means of the first and last `fraction` of steps and a bootstrap 95% interval of their
  difference (each window's steps resampled with replacement)."""
  n = max(1, int(round(fraction * len(rewards))))
  first, last = rewards[:n], rewards[-n:]
  rng = np.random.default_rng(seed)
  diffs = (rng.choice(last, (boots, n)).mean(1) - rng.choice(first, (boots, n)).mean(1))
  lo, hi = np.percentile(diffs, [2.5, 97.5])
  return {"steps_per_window": n, "first": float(first.mean()), "last": float(last.mean()),
          "difference": float(last.mean() - first.mean()), "bootstrap_95": (float(lo), float(hi))}


def slope(rewards: np.ndarray) -> dict:
  """OLS slope of reward on step (1, 2, ...) with its two-sided 95% t interval."""
  x = np.arange(1, len(rewards) + 1, dtype=np.float64)
  xc = x - x.mean()
  b = float((xc * (rewards - rewards.mean())).sum() / (xc ** 2).sum())
  resid = rewards - rewards.mean() - b * xc
  se = math.sqrt((resid ** 2).sum() / (len(x) - 2) / (xc ** 2).sum())
  t = float(stats.t.ppf(0.975, len(x) - 2))
  return {"slope": b, "slope_95": (b - t * se, b + t * se)}
