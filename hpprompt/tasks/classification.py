"""Few-shot classification as a prompt-optimisation task: gap reward and accuracy of prompts.

Reward of a prompt z (RLPrompt Sec. 3.1, `fsc_reward.py`; PIN App. B): the mean over the training
examples of the piecewise gap reward `hpprompt.ops.gap_reward` over the task LM's verbalizer
probabilities. Shaping (z-score over the prompts of a step, rescale) is the agent's business.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from hpprompt import ops
from hpprompt.tasks.data import Example
from hpprompt.tasks.scoring import Scorer


@functools.partial(jax.jit, static_argnames=("correct_coeff", "incorrect_coeff"))
def gap_rewards(class_logits: jax.Array, labels: jax.Array, *, correct_coeff: float = 200.0,
                incorrect_coeff: float = 180.0) -> tuple[jax.Array, jax.Array]:
  """Per-prompt mean gap reward and accuracy from logits [N, P, C] and labels [N] -> ([P], [P])."""
  per_prompt = jax.vmap(functools.partial(ops.gap_reward, correct_coeff=correct_coeff,
                                          incorrect_coeff=incorrect_coeff), in_axes=(0, None))
  reward, correct = jax.vmap(per_prompt, in_axes=(0, 0))(class_logits, labels)   # [N, P]
  return reward.mean(0), correct.mean(0)


def accuracy_from_logits(class_logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Argmax accuracy of every prompt, logits [N, P, C] -> [P]."""
  return (np.argmax(class_logits, -1) == np.asarray(labels)[:, None]).mean(0)


@dataclasses.dataclass
class ClassificationTask:
  """A scorer (task LM + template + verbalizers) with its train / dev / test examples."""
  scorer: Scorer
  train: list[Example]
  dev: list[Example]
  test: list[Example] | None = None
  correct_coeff: float = 200.0
  incorrect_coeff: float = 180.0

  def _split(self, split: str) -> list[Example]:
    examples = {"train": self.train, "dev": self.dev, "test": self.test}.get(split)
    if examples is None:
      raise ValueError(f"no {split!r} examples in this task.")
    return examples

  def rewards(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(raw gap reward [P], training accuracy [P]) of prompt strings on the training examples."""
    logits = self.scorer.class_logits(prompts, self.train)
    labels = jnp.asarray([e.label for e in self.train], jnp.int32)
    reward, acc = gap_rewards(jnp.asarray(logits), labels, correct_coeff=self.correct_coeff,
                              incorrect_coeff=self.incorrect_coeff)
    return np.asarray(reward), np.asarray(acc)

  def accuracy(self, prompts: list[str], split: str = "dev") -> np.ndarray:
    """Test-time accuracy (argmax over verbalizers, RLPrompt's evaluator) of each prompt [P]."""
    examples = self._split(split)
    logits = self.scorer.class_logits(prompts, examples)
    return accuracy_from_logits(logits, np.asarray([e.label for e in examples]))
