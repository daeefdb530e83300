"""Entropy regularisers: the (policy, value, entropy) triple that separates RLPrompt from PIN.

RLPrompt (Deng et al. 2022) uses the Shannon triple (softmax, alpha*logsumexp(z/alpha), H);
PIN (Choi et al. 2024) the sparse Tsallis triple (sparsemax, alpha*spmax(z/alpha), W). The agent and the
soft-Q losses take a `Regularizer` and never branch on the method.
"""
from typing import Callable, NamedTuple

import chex

from hpprompt.ops import shannon
from hpprompt.ops import sparsemax as sparsemax_lib

Array = chex.Array
PolicyFn = Callable[[Array, Array | None], Array]   # (logits [V], mask [V] | None) -> probs [V]
ValueFn = Callable[[Array, Array | None], Array]    # (logits [V], mask [V] | None) -> scalar
EntropyFn = Callable[[Array], Array]                # probs [V] -> scalar


class Regularizer(NamedTuple):
  """One entropy regulariser; value(z) = <policy(z), z> + temperature * entropy(policy(z))."""
  name: str
  temperature: float
  policy: PolicyFn
  value: ValueFn
  entropy: EntropyFn


def shannon_regularizer(temperature: float = 1.0) -> Regularizer:
  """Softmax policy and log-sum-exp value (RLPrompt, soft Q-learning)."""
  return Regularizer(
      name="shannon", temperature=temperature,
      policy=lambda z, m=None: shannon.softmax(z, m, temperature=temperature),
      value=lambda z, m=None: shannon.logsumexp(z, m, temperature=temperature),
      entropy=shannon.shannon_entropy)


def tsallis_regularizer(temperature: float = 1.0,
                        top_k: int = sparsemax_lib.DEFAULT_TOP_K) -> Regularizer:
  """Sparsemax policy and spmax value (PIN, sparse Tsallis entropy)."""
  return Regularizer(
      name="tsallis", temperature=temperature,
      policy=lambda z, m=None: sparsemax_lib.sparsemax(z, m, temperature=temperature, top_k=top_k),
      value=lambda z, m=None: sparsemax_lib.spmax(z, m, temperature=temperature, top_k=top_k),
      entropy=sparsemax_lib.tsallis_entropy)


def get_regularizer(name: str, temperature: float = 1.0) -> Regularizer:
  """'shannon' or 'tsallis'; a clear error for anything else."""
  if name == "shannon":
    return shannon_regularizer(temperature)
  if name == "tsallis":
    return tsallis_regularizer(temperature)
  raise ValueError(f"Unknown entropy regulariser {name!r}; expected 'shannon' or 'tsallis'.")
