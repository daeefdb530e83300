"""Did a run learn? The first-vs-last-20% bootstrap and the OLS slope interval against scipy and
the normal approximation; examples/learning.py prints them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from hpprompt.report import trend

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_learning_intervals_match_references():
  rng = np.random.default_rng(3)
  rewards = 0.002 * np.arange(250) + rng.normal(0, 0.1, 250)
  fit = stats.linregress(np.arange(1, 251), rewards)
  got = trend.slope(rewards)
  t = stats.t.ppf(0.975, 248)
  assert got["slope"] == pytest.approx(fit.slope)
  np.testing.assert_allclose(got["slope_95"], (fit.slope - t * fit.stderr,
                                               fit.slope + t * fit.stderr), rtol=1e-9)
  fl = trend.first_last(rewards, boots=20_000)
  first, last = rewards[:50], rewards[-50:]
  assert fl["steps_per_window"] == 50 and fl["first"] == pytest.approx(first.mean())
  assert fl["difference"] == pytest.approx(last.mean() - first.mean())
  # The percentile bootstrap of a difference of means is close to its normal approximation.
  half = 1.96 * np.sqrt(first.var() / 50 + last.var() / 50)
  np.testing.assert_allclose(fl["bootstrap_95"], (fl["difference"] - half, fl["difference"] + half),
                             atol=0.1 * half)


def test_step_rewards_in_step_order_and_the_example_script(tmp_path):
  rows = [{"step": s, "raw_reward": float(s), "content": 2.0 * s} for s in (3, 1, 2)]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  np.testing.assert_array_equal(trend.step_rewards(str(tmp_path)), [1.0, 2.0, 3.0])
  np.testing.assert_array_equal(trend.step_rewards(str(tmp_path), "content"), [2.0, 4.0, 6.0])
  out = subprocess.run([sys.executable, "examples/learning.py", str(tmp_path)], capture_output=True,
                       text=True, check=True, cwd=REPO).stdout
  assert out.startswith("3 steps; mean reward first 1 steps 1.000, last 1 3.000: change +2.000")
