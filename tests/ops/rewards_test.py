"""zscore, rescale and the gap reward against NumPy transcriptions of RLPrompt's code."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref


def test_zscore_one_group():
  r = np.random.default_rng(0).normal(size=16).astype(np.float32) * 40 + 10
  got = jax.jit(ops.zscore)(jnp.asarray(r))
  chex.assert_shape(got, (16,))
  chex.assert_type(got, jnp.float32)
  np.testing.assert_allclose(got, ref.zscore(r), rtol=1e-5, atol=1e-5)
  # Population std: mean 0 and std = std / (std + eps).
  np.testing.assert_allclose(np.mean(got), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.std(got), np.std(r) / (np.std(r) + 1e-4), rtol=1e-5)


def test_zscore_constant_rewards_and_eps():
  got = ops.zscore(jnp.full(4, 3.0))
  np.testing.assert_array_equal(got, np.zeros(4))
  r = jnp.asarray([0.0, 1.0])                                      # std 0.5
  np.testing.assert_allclose(ops.zscore(r), [-0.5 / 0.5001, 0.5 / 0.5001], rtol=1e-6)
  np.testing.assert_allclose(ops.zscore(r, eps=0.5), [-0.5, 0.5], rtol=1e-6)


def test_zscore_grouped():
  """Style transfer: a group per source sentence; unequal sizes, a singleton, empty groups."""
  rng = np.random.default_rng(1)
  group_ids = np.array([0, 2, 2, 0, 3, 2, 0, 0, 2, 3, 5], np.int32)   # 1 and 4 are empty
  r = (rng.normal(size=group_ids.size) * 5).astype(np.float32)
  got = jax.jit(functools.partial(ops.zscore, num_groups=6))(jnp.asarray(r), jnp.asarray(group_ids))
  np.testing.assert_allclose(got, ref.zscore(r, group_ids), rtol=1e-5, atol=1e-5)
  assert got[-1] == 0.0                                             # singleton group
  assert not np.allclose(got, ref.zscore(r), atol=1e-2)            # differs from one group


def test_zscore_bad_input():
  with pytest.raises(ValueError, match="num_groups"):
    ops.zscore(jnp.ones(3), jnp.zeros(3, jnp.int32))
  with pytest.raises(AssertionError):
    ops.zscore(jnp.ones((2, 3)))
  with pytest.raises(AssertionError):
    ops.zscore(jnp.ones(3), jnp.zeros(3), num_groups=1)              # float group ids
  with pytest.raises(AssertionError):
    ops.zscore(jnp.ones(3), jnp.zeros(4, jnp.int32), num_groups=1)


@pytest.mark.parametrize("new_min, new_max, scale, shift", [(0.0, 5.0, 5.0, 0.0),
                                                            (-20.0, 80.0, 100.0, -20.0)])
def test_rescale(new_min, new_max, scale, shift):
  x = np.array([-1.5, 0.0, 0.25, 1.0, 2.0], np.float32)             # no clipping outside [0, 1]
  got = ops.rescale(jnp.asarray(x), 0.0, 1.0, new_min, new_max)
  np.testing.assert_allclose(got, scale * x + shift, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got, ref.rescale(x, 0.0, 1.0, new_min, new_max), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ops.rescale(jnp.asarray(x), -1.0, 3.0, 0.0, 1.0), (x + 1) / 4,
                             rtol=1e-6)
  with pytest.raises(ValueError):
    ops.rescale(jnp.asarray(x), 1.0, 1.0, 0.0, 5.0)


_gap = jax.jit(jax.vmap(ops.gap_reward))


@pytest.mark.parametrize("num_classes", [2, 5])
def test_gap_reward_matches_rlprompt(num_classes):
  rng = np.random.default_rng(num_classes)
  logits = (rng.normal(size=(64, num_classes)) * 2).astype(np.float32)
  labels = rng.integers(0, num_classes, size=64).astype(np.int32)
  reward, correct = _gap(jnp.asarray(logits), jnp.asarray(labels))
  chex.assert_type([reward, correct], [jnp.float32, bool])
  want_r, want_c = ref.gap_reward_batch(logits, labels)
  np.testing.assert_allclose(reward, want_r, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(correct, want_c)
  assert want_c.any() and (~want_c).any()
  np.testing.assert_array_equal(correct, logits.argmax(-1) == labels)


def test_gap_reward_ties_and_hand_values():
  log3 = np.log(3.0)
  logits = np.array([
      [0.0, log3, -50.0, -50.0, -50.0],    # P = [.25, .75, ~0, ...]: label 1, gap .5 -> 100
      [0.0, log3, -50.0, -50.0, -50.0],    # label 0: gap -.5 -> -90
      [1.0, 1.0, 1.0, 1.0, 1.0],           # all tied: every other class excluded, gap = .2 + 1
      [2.0, 1.0, 1.0, 0.0, 0.0],           # label 1 tied with 2, below 0: gap = P1 - P0 < 0
      [1.0, 1.0, 0.0, 0.0, 0.0],           # label tied with the max: compared with the third
  ], np.float32)
  labels = np.array([1, 0, 3, 1, 0], np.int32)
  reward, correct = _gap(jnp.asarray(logits), jnp.asarray(labels))
  want_r, want_c = ref.gap_reward_batch(logits, labels)
  np.testing.assert_allclose(reward, want_r, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(correct, want_c)
  np.testing.assert_allclose(reward[:3], [100.0, -90.0, 1.2 * 200], rtol=1e-5)
  assert not correct[3] and correct[4]
  p = np.exp(logits[4]) / np.exp(logits[4]).sum()
  np.testing.assert_allclose(reward[4], (p[0] - p[2]) * 200, rtol=1e-5)


def test_gap_reward_coefficients_and_bad_input():
  logits = jnp.asarray([0.0, np.log(3.0)])
  r, _ = ops.gap_reward(logits, jnp.asarray(0), correct_coeff=1.0, incorrect_coeff=2.0)
  np.testing.assert_allclose(r, -1.0, rtol=1e-6)
  r, _ = ops.gap_reward(logits, jnp.asarray(1), correct_coeff=1.0, incorrect_coeff=2.0)
  np.testing.assert_allclose(r, 0.5, rtol=1e-6)
  with pytest.raises(AssertionError):
    ops.gap_reward(jnp.asarray([1, 2]), jnp.asarray(0))                # int logits
  with pytest.raises(AssertionError):
    ops.gap_reward(logits, jnp.asarray([0]))                          # label rank
  with pytest.raises(AssertionError):
    ops.gap_reward(logits, jnp.asarray(0.0))                          # float label
