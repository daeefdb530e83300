"""The style reward's signal-to-noise measurement end to end on a tiny random GPT-2."""
import dataclasses
import json

import numpy as np
import pytest

from hpprompt.launch import cli
from hpprompt.launch import style_snr

pytestmark = pytest.mark.slow


def _cfg(model_dir, tmp_path, **kw):
  agent = dict(prompt_length=2, prompts_per_step=2, mlp_hidden=16, filter_top_k=50)
  kw = {"random_prompts": 3, "sources": 2, "samples": 2, "greedy_sources": 3, "content_layer": 1,
        "classifier_pool": 20, "cache_dir": str(tmp_path / "cache"),
        "output_json": str(tmp_path / "snr.json"), **kw}
  return style_snr.RewardSNRConfig(task_lm=model_dir, policy_lm=model_dir, source_token="<s>",
                                   agent=agent, prompts=("Positive review:",), **kw)


def test_measure_writes_components_and_comparisons(tiny_gpt2_dir, tmp_path):
  res = style_snr.measure(_cfg(tiny_gpt2_dir, tmp_path))
  saved = json.loads((tmp_path / "snr.json").read_text())
  assert saved["direction"] == "0to1"
  for mode, (m, n) in (("sampled", (2, 2)), ("greedy", (3, 1))):
    for clf in ("reward", "judge"):
      s = res[mode][clf]
      assert s["random_components"]["shape"] == [3, m, n]
      rows = s["prompts"]
      assert [r["prompt"] for r in rows[:2]] == ["", "Positive review:"]
      assert len(rows) == 5 and "vs_null" not in rows[0] and "vs_null" in rows[1]
      assert all(np.isfinite(r["mean"]) and 0 <= r["mean"] <= 100 for r in rows)
      assert s["random_mean"] == pytest.approx(np.mean([r["mean"] for r in rows[2:]]))
  assert res["greedy"]["reward"]["random_components"]["var_sample"] == 0.0
  text = style_snr.markdown([saved])
  assert "## yelp 0to1" in text and "'Positive review:'" in text and "best random" in text


@pytest.mark.parametrize("change,flag", [
    (dict(random_prompts=1), "random_prompts"),
    (dict(sources=1), "sources"),
    (dict(samples=0), "samples"),
    (dict(greedy_sources=10 ** 6), "greedy_sources"),
    (dict(direction="2to1"), "direction"),
    (dict(prompts=("\udcff",)), "prompts"),
])
def test_bad_settings_name_the_flag(tiny_gpt2_dir, tmp_path, change, flag):
  with pytest.raises(cli.FlagError) as e:
    style_snr.measure(dataclasses.replace(_cfg(tiny_gpt2_dir, tmp_path), **change))
  assert e.value.flag == flag, str(e.value)
