"""Your own reward on generated text: a prompt-optimisation task whose reward is a Python function.

The task LM continues each (prompt, input) with the style-transfer generator and template
(`hpprompt.tasks.generation`: `'{prompt} "{sentence_1}" "'`, top-k sampling, the output cut at the
closing quote and after its first sentence); the user's function

  reward(prompts: list[str], inputs: list[str], outputs: list[str]) -> one number per output

scores them (the three lists are aligned: output i was generated from prompts[i] and inputs[i]).
A step pairs every prompt with the same `inputs_per_step` consecutive inputs (the file read in
order, cycling), `num_samples` outputs each; a prompt's reward is the mean over its outputs, and the
agent z-scores it over the step's prompts. Validation: mean reward on the dev inputs (fixed sampling
key, memoised); test: mean reward of `eval_samples` outputs per test input.

A function that raises, returns the wrong shape or a non-finite number stops the run with a
`RewardError` naming the function and the step, before anything of that step is logged or saved.
"""
import dataclasses
import importlib.util
import os
import sys

import jax
import numpy as np

from hpprompt.tasks.base import StepRewards
from hpprompt.tasks.data import DataError
from hpprompt.tasks.generation import Generator


class RewardError(ValueError):
  """The user's reward function failed, or returned something that is not one number per output."""


def load_reward(spec: str):
  """(function, its name 'FILE.py:function') from `spec`; ValueError saying what is wrong."""
  path, sep, name = spec.rpartition(":")
  if not sep or not path or not name.isidentifier():
    raise ValueError(f"{spec!r} is not FILE.py:function (e.g. my_reward.py:score).")
  if not os.path.isfile(path):
    raise ValueError(f"{path!r} does not exist" + (" (a directory)." if os.path.isdir(path)
                                                   else "."))
  module_name = "hpprompt_user_reward_" + "".join(c if c.isalnum() else "_" for c in
                                                  os.path.abspath(path))
  module_spec = importlib.util.spec_from_file_location(module_name, path)
  if module_spec is None:
    raise ValueError(f"{path!r} is not a Python file.")
  module = importlib.util.module_from_spec(module_spec)
  folder = os.path.dirname(os.path.abspath(path))
  sys.path.insert(0, folder)            # the reward file may import modules beside it
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ValueError(f"{path}:{e.lineno}: syntax error: {e.msg}.") from None
  except Exception as e:  # noqa: BLE001  (anything the user's module raises at import)
    raise ValueError(f"importing {path} raised {type(e).__name__}: {e}") from None
  finally:
    sys.path.remove(folder)
  fn = getattr(module, name, None)
  if fn is None:
    found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                   and getattr(v, "__module__", None) == module_name)
    raise ValueError(f"{path} has no function {name!r}; its functions: {found}.")
  if not callable(fn):
    raise ValueError(f"{path}:{name} is a {type(fn).__name__}, not a function.")
  return fn, f"{path}:{name}"


def read_inputs(path: str) -> list[str]:
  """Non-blank lines of a UTF-8 text file (one input each); DataError with `file:line`."""
  if not os.path.isfile(path):
    raise DataError(f"{path!r} does not exist" + (" (a directory)." if os.path.isdir(path)
                                                  else "."))
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x}); save the file as "
                    "UTF-8.") from None
  inputs = [line.strip() for line in text.splitlines() if line.strip()]
  if not inputs:
    raise DataError(f"{path} has no inputs (one per line).")
  return inputs


def call_reward(fn, name: str, prompts: list[str], inputs: list[str], outputs: list[str],
                where: str) -> np.ndarray:
  """[len(outputs)] float64 rewards of the user's function; RewardError naming it and `where` (the
  step)."""
  try:
    value = fn(list(prompts), list(inputs), list(outputs))
  except Exception as e:  # noqa: BLE001  (the user's code: any exception is reported in one line)
    raise RewardError(f"{name} raised {type(e).__name__}: {e} {where}.") from e
  try:
    rewards = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    raise RewardError(f"{name} returned {type(value).__name__} {str(value)[:60]!r}, not one "
                      f"number per output ({len(outputs)}) {where}.") from None
  if rewards.shape != (len(outputs),):
    raise RewardError(f"{name} returned shape {rewards.shape} for {len(outputs)} outputs; it must "
                      f"return one number per output {where}.")
  bad = np.flatnonzero(~np.isfinite(rewards))
  if bad.size:
    i = int(bad[0])
    raise RewardError(f"{name} returned {rewards[i]} for output {i} ({outputs[i][:40]!r} of "
                      f"prompt {prompts[i]!r}) {where}.")
  return rewards


@dataclasses.dataclass
class CustomRewardTask:
  """The task LM's generator and the user's reward over inputs (see the module docstring)."""
  generator: Generator
  reward_fn: object
  reward_name: str
  train: list[str]
  dev: list[str]
  test: list[str]
  num_samples: int = 4
  inputs_per_step: int = 2
  eval_samples: int = 4
  seed: int = 0
  validation_memo: dict = dataclasses.field(default_factory=dict)
  last_outputs: list[list[str]] | None = None
  step: int = 0                       # the last training step (1-based), for error messages
  validation_metric = "dev_reward"

  def rewards(self, prompts: list[str], inputs: list[str], num_samples: int, key,
              where: str) -> tuple[list, np.ndarray]:
    """(texts [P][N][S], rewards [P, N, S]) of every prompt on every input."""
    texts = self.generator.generate(prompts, inputs, num_samples, key)
    flat = [(p, x, t) for p, per_p in zip(prompts, texts) for x, per_x in zip(inputs, per_p)
            for t in per_x]
    rewards = call_reward(self.reward_fn, self.reward_name, *map(list, zip(*flat)), where=where)
    return texts, rewards.reshape(len(prompts), len(inputs), num_samples)

  def step_inputs(self, step: int) -> list[str]:
    b = self.inputs_per_step
    return [self.train[(step * b + i) % len(self.train)] for i in range(b)]

  # ---- the agent's task interface (hpprompt.tasks.base.PromptTask) ------------------------------

  def step_rewards(self, prompts: list[str], step: int) -> StepRewards:
    self.step = step + 1
    key = jax.random.fold_in(jax.random.PRNGKey(self.seed), step)
    texts, rewards = self.rewards(prompts, self.step_inputs(step), self.num_samples, key,
                                  f"at step {self.step}; nothing of step {self.step} was saved")
    p, n, s = np.unravel_index(np.argmax(rewards), rewards.shape)
    return StepRewards(raw=rewards.mean(axis=(1, 2)), metrics={"sample_output": texts[p][n][s]})

  def validate(self, prompts: list[str]) -> np.ndarray:
    """Mean reward of each prompt over the dev inputs x num_samples (fixed key, memoised)."""
    new = [p for p in dict.fromkeys(prompts) if p not in self.validation_memo]
    if new:
      where = f"at step {self.step} (validation); nothing of step {self.step} was saved"
      _, rewards = self.rewards(new, self.dev, self.num_samples, jax.random.PRNGKey(self.seed + 1),
                                where)
      self.validation_memo.update(zip(new, rewards.mean(axis=(1, 2)).tolist()))
    return np.asarray([self.validation_memo[p] for p in prompts])

  def evaluate(self, prompt: str, batch: int = 16) -> dict:
    """Mean reward of `eval_samples` outputs per test input ({} without test inputs)."""
    if not self.test:
      return {}
    key = jax.random.PRNGKey(self.seed + 2)
    texts, rewards = [], []
    for i in range(0, len(self.test), batch):
      t, r = self.rewards([prompt], self.test[i:i + batch], self.eval_samples,
                          jax.random.fold_in(key, i), "in the test evaluation of the best prompt")
      texts += t[0]
      rewards.append(r[0])
    rewards = np.concatenate(rewards)                 # [N, S]
    self.last_outputs = texts
    per_input = rewards.mean(1)
    return {"test_reward": float(per_input.mean()),
            "test_reward_se": float(per_input.std(ddof=1) / np.sqrt(len(per_input)))
            if len(per_input) > 1 else 0.0,
            "test_examples": len(per_input)}

  def memo_state(self) -> dict:
    return {"validation": [[p, v] for p, v in self.validation_memo.items()]}

  def load_memo_state(self, state: dict | None) -> None:
    if state:
      self.validation_memo = {p: v for p, v in state["validation"]}
