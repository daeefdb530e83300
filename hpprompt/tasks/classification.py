"""Few-shot classification as a prompt-optimisation task: gap reward and accuracy of prompts.

Reward of a prompt z (RLPrompt Sec. 3.1, `fsc_reward.py`; PIN App. B): the mean over the training
examples of the piecewise gap reward `hpprompt.ops.gap_reward` over the task LM's verbalizer
probabilities. Shaping (z-score over the prompts of a step, rescale) is the agent's business.

Optional contextual calibration ("Calibrate Before Use", Zhao et al. ICML 2021, Eq. 1 with
W = diag(p_cf)^-1, b = 0): the verbalizer log-probabilities of each example minus those of a
content-free input ("N/A") under the same prompt. The papers do not calibrate (RoBERTa-large's
verbalizer prior is mild); a small causal task LM such as SmolLM2 puts a near-constant prior on one
class that swamps argmax accuracy, so the CPU demo calibrates (`--calibrate`).
"""
import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from hpprompt import ops
from hpprompt.tasks.base import StepRewards
from hpprompt.tasks.data import Example
from hpprompt.tasks.scoring import Scorer
from hpprompt.training.progress import ProgressLine


@functools.partial(jax.jit, static_argnames=("correct_coeff", "incorrect_coeff"))
def gap_rewards(class_logits: jax.Array, labels: jax.Array, *, correct_coeff: float = 200.0,
                incorrect_coeff: float = 180.0) -> tuple[jax.Array, jax.Array]:
  """Per-prompt mean gap reward and accuracy from logits [N, P, C] and labels [N] -> ([P], [P])."""
  per_prompt = jax.vmap(functools.partial(ops.gap_reward, correct_coeff=correct_coeff,
                                          incorrect_coeff=incorrect_coeff), in_axes=(0, None))
  reward, correct = jax.vmap(per_prompt, in_axes=(0, 0))(class_logits, labels)   # [N, P]
  return reward.mean(0), correct.mean(0)


def calibrate(class_logits: np.ndarray, content_free_logits: np.ndarray) -> np.ndarray:
  """log p(c | x, z) - log p(c | N/A, z): logits [N, P, C] and content-free logits [1, P, C]."""
  log_p = lambda x: x - np.logaddexp.reduce(x, axis=-1, keepdims=True)
  return log_p(np.asarray(class_logits, np.float64)) - log_p(np.asarray(content_free_logits,
                                                                       np.float64))


def accuracy_from_logits(class_logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Argmax accuracy of every prompt, logits [N, P, C] -> [P]."""
  return (np.argmax(class_logits, -1) == np.asarray(labels)[:, None]).mean(0)


SELECTIONS = ("accuracy", "reward")


@dataclasses.dataclass
class ClassificationTask:
  """A scorer (task LM + template + verbalizers) with its train / dev / test examples."""
  scorer: Scorer
  train: list[Example]
  dev: list[Example]
  test: list[Example] | None = None
  correct_coeff: float = 200.0
  incorrect_coeff: float = 180.0
  calibrate: bool = False
  content_free: str = "N/A"
  # Best-prompt selection (`validate`): 'accuracy' (dev accuracy) or 'reward' (mean gap reward on
  # the dev set, PIN's trainer in infer mode). Ties keep the prompt found first (PIN: strict >).
  selection: str = "accuracy"
  # Over-long masked-LM inputs: truncate them as RLPrompt does (training inputs on the right, dev
  # and test inputs on the left) instead of raising. Only scorers with `truncation_side` use it.
  truncate: bool = False
  # prompt -> (reward, accuracy) on the training set, and (split, prompt) -> accuracy. The task LM
  # is frozen, so a prompt's scores never change: repeated prompts (common once a policy sharpens)
  # are not scored again. Runs checkpoint these memos so that a resumed run reuses the same values.
  reward_memo: dict = dataclasses.field(default_factory=dict)
  accuracy_memo: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.selection not in SELECTIONS:
      raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}.")

  @property
  def validation_metric(self) -> str:
    return "dev_acc" if self.selection == "accuracy" else "dev_reward"
  # Sets larger than `eval_block` examples (a test set) are scored block by block, with a progress
  # line through `progress` (a print function; None: silent).
  progress: Callable[[str], None] | None = None
  eval_block: int = 256

  def _split(self, split: str) -> list[Example]:
    examples = {"train": self.train, "dev": self.dev, "test": self.test}.get(split)
    if examples is None:
      raise ValueError(f"no {split!r} examples in this task.")
    return examples

  def _blocked_logits(self, prompts: list[str], examples: list[Example], label: str) -> np.ndarray:
    """The scorer's logits [N, P, C], block by block with a progress line. Blocks follow the input
    length order, so each is padded about as little as the whole set would be."""
    order = np.argsort([len(e.text) + len(e.text_b or "") for e in examples], kind="stable")
    line = ProgressLine(f"{label}: {len(prompts)} prompt(s)", self.progress)
    out = None
    for start in range(0, len(examples), self.eval_block):
      idx = order[start:start + self.eval_block]
      block = [examples[i] for i in idx]
      logits = self.scorer.class_logits(prompts, block)
      # A block is scored once: drop it from the scorer's cache of encoded inputs (which keeps the
      # training and validation sets, scored every step).
      getattr(self.scorer, "_encoded", {}).pop(tuple(block), None)
      if out is None:
        out = np.zeros((len(examples),) + logits.shape[1:], logits.dtype)
      out[idx] = logits
      line.update(min(start + self.eval_block, len(examples)), len(examples))
    return out

  def class_logits(self, prompts: list[str], examples: list[Example], training: bool = False,
                   label: str = "scoring") -> np.ndarray:
    """Verbalizer logits [N, P, C] (calibrated log-probabilities with `calibrate`)."""
    if hasattr(self.scorer, "truncation_side"):
      self.scorer.truncation_side = ("right" if training else "left") if self.truncate else None
    if self.progress is not None and len(examples) > self.eval_block:
      logits = self._blocked_logits(prompts, examples, label)
    else:
      logits = self.scorer.class_logits(prompts, examples)
    if not self.calibrate:
      return logits
    content_free = [Example(self.content_free, 0, self.content_free if examples[0].text_b
                            is not None else None)]
    return calibrate(logits, self.scorer.class_logits(prompts, content_free)).astype(np.float32)

  def rewards(self, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(raw gap reward [P], training accuracy [P]) of prompt strings on the training examples."""
    new = list(dict.fromkeys(p for p in prompts if p not in self.reward_memo))
    if new:
      logits = self.class_logits(new, self.train, training=True)
      labels = jnp.asarray([e.label for e in self.train], jnp.int32)
      reward, acc = gap_rewards(jnp.asarray(logits), labels, correct_coeff=self.correct_coeff,
                                incorrect_coeff=self.incorrect_coeff)
      for p, r, a in zip(new, np.asarray(reward).tolist(), np.asarray(acc).tolist()):
        self.reward_memo[p] = (r, a)
    scores = np.asarray([self.reward_memo[p] for p in prompts], np.float32)
    return scores[:, 0], scores[:, 1]

  def _score(self, prompts: list[str], split: str) -> None:
    """Memoises the accuracy and the mean gap reward of new prompts on a split (one scoring pass;
    the reward under the key `split + '/reward'`)."""
    examples = self._split(split)
    new = list(dict.fromkeys(p for p in prompts if (split, p) not in self.accuracy_memo
                             or (split + "/reward", p) not in self.accuracy_memo))
    if not new:
      return
    logits = self.class_logits(new, examples, label=f"{split} set")
    labels = np.asarray([e.label for e in examples])
    acc = accuracy_from_logits(logits, labels)
    reward, _ = gap_rewards(jnp.asarray(logits), jnp.asarray(labels, jnp.int32),
                            correct_coeff=self.correct_coeff, incorrect_coeff=self.incorrect_coeff)
    for p, a, r in zip(new, acc, np.asarray(reward).tolist()):
      self.accuracy_memo[(split, p)] = float(a)
      self.accuracy_memo[(split + "/reward", p)] = float(r)

  def accuracy(self, prompts: list[str], split: str = "dev") -> np.ndarray:
    """Test-time accuracy (argmax over verbalizers, RLPrompt's evaluator) of each prompt [P]."""
    self._score(prompts, split)
    return np.asarray([self.accuracy_memo[(split, p)] for p in prompts])

  def mean_reward(self, prompts: list[str], split: str = "dev") -> np.ndarray:
    """Mean gap reward (no z-score: RLPrompt/PIN infer mode) of each prompt on a split [P]."""
    self._score(prompts, split)
    return np.asarray([self.accuracy_memo[(split + "/reward", p)] for p in prompts])

  # ---- the agent's task interface (hpprompt.tasks.base.PromptTask) --------------------------------

  def step_rewards(self, prompts: list[str], step: int) -> StepRewards:
    """Every step scores the whole training set (RLPrompt/PIN few-shot), so `step` is unused."""
    del step
    flops_before, start = getattr(self.scorer, "flops", 0), time.perf_counter()
    raw, acc = self.rewards(prompts)
    seconds = time.perf_counter() - start
    flops = getattr(self.scorer, "flops", 0) - flops_before    # task-LM FLOPs of real tokens
    return StepRewards(raw, {"train_acc": float(acc.mean()), "reward_flops": float(flops),
                             "reward_flops_per_s": flops / seconds if flops else 0.0})

  def validate(self, prompts: list[str]) -> np.ndarray:
    """The selection score (`selection`): dev accuracy or mean dev gap reward."""
    if self.selection == "reward":
      return self.mean_reward(prompts, "dev")
    return self.accuracy(prompts, "dev")

  def evaluate(self, prompt: str) -> dict:
    if self.test is None:
      return {}
    return {"test_accuracy": float(self.accuracy([prompt], "test")[0])}

  def memo_state(self) -> dict:
    """The memos as JSON-able lists (for checkpoints)."""
    return {"rewards": [[p, r, a] for p, (r, a) in self.reward_memo.items()],
            "accuracy": [[s, p, a] for (s, p), a in self.accuracy_memo.items()]}

  def load_memo_state(self, state: dict | None) -> None:
    if not state:
      return
    self.reward_memo = {p: (r, a) for p, r, a in state["rewards"]}
    self.accuracy_memo = {(s, p): a for s, p, a in state["accuracy"]}
