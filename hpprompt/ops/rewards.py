"""Reward shaping and the few-shot classification gap reward of RLPrompt / PIN.

Shaping order (RLPrompt `SQLModule._forward`, `module_utils.get_reward_shaping_func`): raw reward ->
z-score within groups (train mode) -> linear rescale [old_min, old_max] -> [new_min, new_max].
Classification: z-score over the prompts of a batch, then [0,1]->[0,5] (RLPrompt) or [0,1]->[0,1] (PIN).
"""
import chex
import jax
import jax.numpy as jnp

Array = chex.Array

ZSCORE_EPS = 1e-4


def zscore(rewards: Array, group_ids: Array | None = None, *, num_groups: int | None = None,
           eps: float = ZSCORE_EPS) -> Array:
  """(r - mean_g) / (std_g + eps) with the population std of each group g.

  RLPrompt `fsc_reward.py` / `tst_reward.py` (`np.mean`, `np.std`, `+ 1e-4`). For classification all
  prompts of a batch form one group; for style transfer each source sentence is a group.

  Args:
    rewards: float [N].
    group_ids: optional int [N] in [0, num_groups); None means one group.
    num_groups: number of groups (static); required with `group_ids`.
    eps: added to the standard deviation.

  Returns:
    float32 [N].
  """
  chex.assert_rank(rewards, 1)
  r = rewards.astype(jnp.float32)
  if group_ids is None:
    return (r - r.mean()) / (r.std() + eps)
  if num_groups is None:
    raise ValueError("zscore: `num_groups` is required when `group_ids` is given.")
  chex.assert_equal_shape([rewards, group_ids])
  chex.assert_type(group_ids, int)
  count = jax.ops.segment_sum(jnp.ones_like(r), group_ids, num_segments=num_groups)
  mean = jax.ops.segment_sum(r, group_ids, num_segments=num_groups) / jnp.maximum(count, 1)
  centred = r - mean[group_ids]
  var = jax.ops.segment_sum(centred * centred, group_ids, num_segments=num_groups)
  std = jnp.sqrt(var / jnp.maximum(count, 1))
  return centred / (std[group_ids] + eps)


def rescale(x: Array, old_min: float, old_max: float, new_min: float, new_max: float) -> Array:
  """Linear map [old_min, old_max] -> [new_min, new_max] (no clipping), RLPrompt's reward shaping."""
  if old_max == old_min:
    raise ValueError(f"rescale: old_min == old_max == {old_min}.")
  return (x - old_min) / (old_max - old_min) * (new_max - new_min) + new_min


def gap_reward(class_logits: Array, label: Array, *, correct_coeff: float = 200.0,
               incorrect_coeff: float = 180.0) -> tuple[Array, Array]:
  """Piecewise gap reward of one example (RLPrompt Sec. 3.1 / `fsc_reward.py`).

  P = softmax over the verbalizer logits; Gap = P(c) - max_{c': P(c') != P(c)} P(c');
  Correct = 1[Gap > 0]; r = Gap * (correct_coeff if Correct else incorrect_coeff). As in the code, classes
  whose probability equals P(c) exactly are left out of the max (their stand-in is -1).

  Args:
    class_logits: task-LM logits of the C verbalizer tokens, [C].
    label: int scalar, the true class c.
    correct_coeff, incorrect_coeff: lambda_2 = 200 and lambda_1 = 180 in the papers.

  Returns:
    (reward, correct): float32 scalar and bool scalar.
  """
  chex.assert_rank([class_logits, label], [1, 0])
  chex.assert_type([class_logits, label], [float, int])
  probs = jax.nn.softmax(class_logits.astype(jnp.float32))
  p_label = probs[label]
  others = jnp.where(probs == p_label, -1.0, probs)
  gap = p_label - others.max()
  correct = gap > 0
  return gap * jnp.where(correct, correct_coeff, incorrect_coeff), correct
