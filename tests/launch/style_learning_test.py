"""style_snr.learning / curves_figure / learning_markdown on synthetic run directories."""
import json

import numpy as np
import pytest

from hpprompt.launch import cli
from hpprompt.launch import style_snr
from hpprompt.report import trend


def _run(path, reward, content, style):
  path.mkdir()
  rows = [{"step": i + 1, "raw_reward": r, "content": c, "style": s}
          for i, (r, c, s) in enumerate(zip(reward, content, style))]
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return str(path)


def test_learning_summary_figure_and_table(tmp_path):
  rng = np.random.default_rng(0)
  steps = np.arange(100)
  rising = _run(tmp_path / "pin.0to1", 30 + 0.1 * steps + rng.normal(0, 1, 100),
                40 + 0.3 * steps, 20 + rng.normal(0, 1, 100))
  summary = style_snr.learning([rising])
  r = summary[rising]
  assert r["raw_reward"]["steps"] == 100 and r["raw_reward"]["bootstrap_95"][0] > 0
  assert r["content"]["slope"] == pytest.approx(0.3)
  assert r["content"]["difference"] == pytest.approx(0.3 * 80)
  lo, hi = r["style"]["slope_95"]
  assert lo < 0 < hi
  assert r["style"] == {**trend.first_last(trend.step_rewards(rising, "style")),
                        **trend.slope(trend.step_rewards(rising, "style")), "steps": 100}
  style_snr.curves_figure([rising], str(tmp_path / "c.png"), window=5)
  assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  text = style_snr.learning_markdown(summary)
  # Content 40 + 0.3 (step - 1): windows of 20 steps average 42.85 and 66.85; an exact line has a
  # zero-width slope interval (the bootstrap's is not: it resamples the steps within each window).
  assert f"| pin.0to1 | content | {42.85:.1f} | {66.85:.1f} | +24.0 [+22.9, +25.1] |" in text
  assert "| +24.0 [+24.0, +24.0] |" in text


def test_missing_run_names_the_flag(tmp_path):
  with pytest.raises(cli.FlagError) as e:
    style_snr.learning([str(tmp_path / "none")])
  assert e.value.flag == "runs"
  with pytest.raises(cli.FlagError) as e:
    style_snr.curves_figure([], str(tmp_path))          # a folder, not a file
  assert e.value.flag == "figure"
