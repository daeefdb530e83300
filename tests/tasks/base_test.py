"""The task interface: classification implements it; grouped and task-shaped rewards reach the agent."""
import dataclasses

import numpy as np

from hpprompt.agent import learner
from hpprompt.agent.config import PRESETS
from hpprompt.tasks.base import PromptTask
from hpprompt.tasks.classification import ClassificationTask


def test_classification_task_is_a_prompt_task():
  members = [m for m in vars(PromptTask) if not m.startswith("_")] + ["validation_metric"]
  assert {"step_rewards", "validate", "evaluate", "memo_state", "load_memo_state"} <= set(members)
  for name in members:
    assert hasattr(ClassificationTask, name), name


def test_grouped_shaping_matches_numpy():
  rng = np.random.default_rng(0)
  raw = rng.normal(size=12).astype(np.float32) * 30
  groups = np.repeat(np.arange(3), 4)
  cfg = PRESETS["rlprompt"]
  got = np.asarray(learner.shape_rewards(raw, cfg, groups))
  want = np.empty_like(raw)
  for g in range(3):
    r = raw[groups == g]
    want[groups == g] = (r - r.mean()) / (r.std() + 1e-4)
  lo, hi = cfg.reward_old_range
  nlo, nhi = cfg.reward_new_range
  want = (want - lo) / (hi - lo) * (nhi - nlo) + nlo
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # one group over all prompts differs from per-group statistics
  assert not np.allclose(np.asarray(learner.shape_rewards(raw, cfg)), got)
  no_z = dataclasses.replace(cfg, reward_zscore=False)
  np.testing.assert_allclose(np.asarray(learner.shape_rewards(raw, no_z, groups)),
                             (raw - lo) / (hi - lo) * (nhi - nlo) + nlo, rtol=1e-5)
