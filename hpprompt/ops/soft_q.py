"""Soft Q-learning losses over one prompt trajectory with a terminal reward.

A trajectory has T steps (prompt tokens) a_0..a_{T-1}; the reward R arrives after the last one.
With online Q-values (logits) z_t, target-network logits z'_t and a value function V (log-sum-exp
for RLPrompt, spmax for PIN, see `regularizers.py`):

  Q_t = z_t[a_t],   V_t = V(z_t),   A_t = Q_t - V_t,   V'_t = V(z'_t)
  v1  L_t = (Q_t - g^{T-1-t} R)^2                                  Monte-Carlo regression
  v2  L_t = (A_t - [g V'_{t+1} 1(t<T-1) + R 1(t=T-1) - V'_t])^2      single-step consistency
  v3  L_t = (sum_{k>=t} g^{k-t} A_k - (g^{T-1-t} R - V'_t))^2         multi-step path consistency
  v2_v3 = (v2 + v3) / 2,       loss = sum_t L_t.
  td  L_t = (Q_t - [R 1(t=T-1) + g V'_{t+1} 1(t<T-1)])^2             one-step TD (see below)

`td` is one-step TD: Q_t regressed onto the final reward at the last step and onto g V'(s_{t+1})
otherwise, V' the value of the target network's Q-values over the filtered actions at s_{t+1}
(`target_mask_t[t+1]`). With V' = alpha spmax it is the Bellman target of PIN's paper (Choi et al.
2024, Eq. 5 and Algorithm 1). With the log-sum-exp value it is `soft_q_loss_with_sparse_rewards_1`
(rlprompt/losses/sql_losses.py:110-142 in RLPrompt and PIN), which `loss_impl=v1` selects under
`algo=sql` (sql_losses.py:47-48): the loss of PIN's few-shot README command (preset `pin-readme`).
`v1` here is PIN's `algo=sparse-ql loss_impl=v1` (`sparse_ql_loss_1`,
rlprompt/losses/sparse_ql_losses.py:183-221: it computes V'_t but regresses Q_t onto
g^{T-1-t} R), which its style-transfer and CLIP README commands run.

With g = 1 these are exactly `soft_q_loss_with_sparse_rewards_{2,3}` of RLPrompt
(rlprompt/losses/sql_losses.py, "v2_v2r_v3_v3r" with coefficient=None) and
`sparse_ql_loss_{1,2,3,2_3}` of PIN (rlprompt/losses/sparse_ql_losses.py) on full-length
trajectories (all that either paper uses). For `length` < T we follow RLPrompt; PIN's code would
add g V'_length to the last step's v2 target and discount v1 by T rather than the length. The
discounted v3 is the path-consistency form of Nachum et al. 2017 (the released code uses g = 1
there only). References: "Efficient (Soft) Q-Learning for Text Generation with Limited Good Data",
Guo et al. 2021 (https://arxiv.org/abs/2106.07704), Eq. 6-9; "RLPrompt", Deng et al. EMNLP 2022,
Sec. 2.2; "PIN", Choi et al. ACL 2024, Eq. 5 and Algorithm 1.

Functions take one trajectory; callers `jax.vmap` over the batch and take the mean (the papers'
reduction: sum over steps, mean over the batch). Targets (everything computed from the target
logits, and R) are under `stop_gradient` unless `stop_target_gradients=False`.
"""
from typing import Callable

import chex
import jax
import jax.numpy as jnp

Array = chex.Array
ValueFn = Callable[[Array, Array | None], Array]

VARIANTS = ("v1", "v2", "v3", "v2_v3", "td")


def _values(logits_t: Array, mask_t: Array | None, value_fn: ValueFn) -> Array:
  if mask_t is None:
    return jax.vmap(lambda z: value_fn(z, None))(logits_t)
  return jax.vmap(value_fn)(logits_t, mask_t)


def _step_losses(variant: str, q_t: Array, a_t: Array, reward: Array, target_q_t: Array, *,
                 value_fn: ValueFn, discount: float, mask_t: Array | None,
                 target_mask_t: Array | None, length: Array | None,
                 stop_target_gradients: bool) -> Array:
  """Per-step losses L_t [T] (zero beyond `length`)."""
  if variant not in VARIANTS:
    raise ValueError(f"Unknown soft-Q loss variant {variant!r}; expected one of {VARIANTS}.")
  chex.assert_rank([q_t, a_t, reward, target_q_t], [2, 1, 0, 2])
  chex.assert_type([q_t, a_t, target_q_t], [float, int, float])
  chex.assert_equal_shape([q_t, target_q_t])
  chex.assert_equal_shape_prefix([q_t, a_t], 1)
  if mask_t is not None:
    chex.assert_equal_shape([q_t, mask_t])
  target_mask_t = mask_t if target_mask_t is None else target_mask_t

  num_steps = q_t.shape[0]
  q_t = q_t.astype(jnp.float32)
  t = jnp.arange(num_steps)
  length = jnp.asarray(num_steps if length is None else length)
  valid = t < length
  last = t == length - 1
  reward = reward.astype(jnp.float32)
  if stop_target_gradients:
    target_q_t = jax.lax.stop_gradient(target_q_t)
    reward = jax.lax.stop_gradient(reward)
  # g^{T-1-t} on valid steps.
  to_go = jnp.where(valid, length - 1 - t, 0).astype(jnp.float32)
  discounted_reward = (discount ** to_go) * reward

  q_a = jnp.take_along_axis(q_t, a_t[:, None], axis=-1)[:, 0]   # Q_t
  if variant == "v1":
    return jnp.where(valid, jnp.square(q_a - discounted_reward), 0.0)

  target_v = _values(target_q_t.astype(jnp.float32), target_mask_t, value_fn)     # V'_t
  target_v = target_v.astype(jnp.float32)
  if stop_target_gradients:
    target_v = jax.lax.stop_gradient(target_v)
  next_v = jnp.concatenate([target_v[1:], jnp.zeros(1, jnp.float32)])           # V'_{t+1}
  if variant == "td":
    td_target = jnp.where(last, reward, discount * next_v)
    return jnp.where(valid, jnp.square(q_a - td_target), 0.0)

  adv = q_a - _values(q_t, mask_t, value_fn).astype(jnp.float32)                  # A_t
  losses = jnp.zeros(num_steps, jnp.float32)
  if variant in ("v2", "v2_v3"):
    target_adv = jnp.where(last, reward, discount * next_v) - target_v
    losses += jnp.where(valid, jnp.square(adv - target_adv), 0.0)
  if variant in ("v3", "v2_v3"):
    # sum_{k=t}^{length-1} g^{k-t} A_k as a [T, T] upper-triangular weighting (T: a prompt length).
    offset = t[None, :] - t[:, None]
    weights = jnp.where((offset >= 0) & valid[None, :], discount ** jnp.maximum(offset, 0), 0.0)
    suffix = weights @ jnp.where(valid, adv, 0.0)
    losses += jnp.where(valid, jnp.square(suffix - (discounted_reward - target_v)), 0.0)
  if variant == "v2_v3":
    losses = losses / 2
  return losses


def soft_q_loss(variant: str, q_t: Array, a_t: Array, reward: Array, target_q_t: Array, *,
                value_fn: ValueFn, discount: float = 1.0, mask_t: Array | None = None,
                target_mask_t: Array | None = None, length: Array | None = None,
                stop_target_gradients: bool = True) -> Array:
  """Soft-Q loss of one trajectory, summed over its steps.

  Args:
    variant: 'v1', 'v2', 'v3', 'v2_v3' or 'td' (see the module docstring).
    q_t: online Q-values (logits) at s_0..s_{T-1}, [T, V].
    a_t: actions taken, int [T].
    reward: terminal (shaped) reward R, scalar.
    target_q_t: target-network logits at the same states, [T, V].
    value_fn: (logits [V], mask [V] | None) -> scalar, e.g. `Regularizer.value`.
    discount: g in [0, 1].
    mask_t: optional boolean [T, V] action filter (PIN's ignorable-token filter) for V_t.
    target_mask_t: filter for V'_t; defaults to `mask_t` (PIN's v2_v3 uses the same masks; in
      `td`, V'_{t+1} = V(target_q_t[t+1] over target_mask_t[t+1]), the filter F_I of Eq. 5).
    length: optional number of valid steps (<= T); later steps are ignored.
    stop_target_gradients: stop gradients through V'_t and R.

  Returns:
    scalar float32 loss.
  """
  return jnp.sum(_step_losses(
      variant, q_t, a_t, reward, target_q_t, value_fn=value_fn, discount=discount, mask_t=mask_t,
      target_mask_t=target_mask_t, length=length, stop_target_gradients=stop_target_gradients))


def soft_q_v1(q_t, a_t, reward, target_q_t, **kwargs) -> Array:
  """Monte-Carlo regression of Q_t onto g^{T-1-t} R (PIN's `algo=sparse-ql loss_impl=v1`); see
  `soft_q_loss`."""
  return soft_q_loss("v1", q_t, a_t, reward, target_q_t, **kwargs)


def soft_q_v2(q_t, a_t, reward, target_q_t, **kwargs) -> Array:
  """Single-step soft-Q consistency (Guo et al. 2021, Eq. 8). See `soft_q_loss`."""
  return soft_q_loss("v2", q_t, a_t, reward, target_q_t, **kwargs)


def soft_q_v3(q_t, a_t, reward, target_q_t, **kwargs) -> Array:
  """Multi-step path consistency (Guo et al. 2021, Eq. 9). See `soft_q_loss`."""
  return soft_q_loss("v3", q_t, a_t, reward, target_q_t, **kwargs)


def soft_q_v2_v3(q_t, a_t, reward, target_q_t, **kwargs) -> Array:
  """Average of v2 and v3, RLPrompt's default loss. See `soft_q_loss`."""
  return soft_q_loss("v2_v3", q_t, a_t, reward, target_q_t, **kwargs)


def soft_q_td(q_t, a_t, reward, target_q_t, **kwargs) -> Array:
  """One-step TD regression of Q_t onto R (last step) or g V'_{t+1}: PIN's Eq. 5 with spmax, the
  `algo=sql loss_impl=v1` of PIN's few-shot README with log-sum-exp; see `soft_q_loss`."""
  return soft_q_loss("td", q_t, a_t, reward, target_q_t, **kwargs)
