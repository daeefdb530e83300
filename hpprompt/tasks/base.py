"""The one interface between the prompt agent's trainer and a task.

A task turns a batch of prompt strings into rewards, scores a prompt on its validation data, and
evaluates the selected prompt on its test data. Few-shot classification, text style transfer and
textual inversion all implement it, so one trainer, one set of presets and one run directory layout
serve every task (RLPrompt's `BaseReward`, PIN's reward modules play the same role).
"""
import dataclasses
from typing import Protocol
from typing import runtime_checkable

import numpy as np


@dataclasses.dataclass
class StepRewards:
  """What a task returns for one training step's prompts.

  Attributes:
    raw: [P] the task reward of each prompt (logged; the agent z-scores and rescales it).
    metrics: per-step scalars for metrics.jsonl and the progress line (e.g. `train_acc`).
    groups: [P] integer group of each prompt (e.g. its source sentence): the agent's z-score is
      taken within each group. None: over all the step's prompts.
    shaped: [P] rewards already normalised by the task (e.g. style transfer's per-source z-score of
      bootstrap maxima); the agent then only rescales them. None: the agent z-scores `raw`.
  """
  raw: np.ndarray
  metrics: dict = dataclasses.field(default_factory=dict)
  groups: np.ndarray | None = None
  shaped: np.ndarray | None = None


@runtime_checkable
class PromptTask(Protocol):
  """What the agent's trainer needs from a task."""

  # Name of the validation score in metrics.jsonl and prompts.csv (e.g. 'dev_acc').
  validation_metric: str

  def step_rewards(self, prompts: list[str], step: int) -> StepRewards:
    """Rewards of one training step's prompts; `step` (0-based) picks the step's inputs, so a resumed
    run sees the same inputs as an uninterrupted one."""

  def validate(self, prompts: list[str]) -> np.ndarray:
    """[P] validation score of each prompt (higher is better); selects the best prompts."""

  def evaluate(self, prompt: str) -> dict:
    """Test metrics of the selected prompt ({} when the task has no test data)."""

  def memo_state(self) -> dict:
    """JSON-able state that a checkpoint must carry (memoised scores), restored by `load_memo_state`."""

  def load_memo_state(self, state: dict | None) -> None:
    """Restores `memo_state()` from a checkpoint."""
