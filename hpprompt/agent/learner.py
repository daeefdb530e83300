"""The learner: soft-Q losses on (e_t, a_t, R) batches, Adam with clipping, Polyak target network.

`train_step(state, batch) -> (state, metrics)` is one jitted pure function. Before each update the
target head moves towards the online head (theta' <- (1 - rho) theta' + rho theta, RLPrompt
`SQLModule._pre_steps`; PIN syncs after each update, which gives the same sequence of targets). The
loss of a batch is the mean over trajectories of the per-trajectory sum over steps (methods.md §1.3).
"""
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct

from hpprompt import ops
from hpprompt.agent import policy
from hpprompt.agent.config import AgentConfig

Array = chex.Array


class Batch(NamedTuple):
  tokens: Array      # [N, L] int32
  states: Array      # [N, L, D]
  thresholds: Array  # [N, L]  (-inf: no filter)
  rewards: Array     # [N] shaped terminal rewards


@struct.dataclass
class TrainState:
  step: Array
  params: policy.HeadParams
  target_params: policy.HeadParams
  opt_state: optax.OptState
  key: Array


def make_optimizer(cfg: AgentConfig) -> optax.GradientTransformation:
  """Adam with global-norm clipping (RLPrompt `get_default_train_op`: lr 5e-5, clip 5.0)."""
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.learning_rate))


def init_state(key: Array, dim: int, cfg: AgentConfig) -> TrainState:
  k_head, k_run = jax.random.split(key)
  params = policy.init_head(k_head, dim, cfg.mlp_hidden)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    target_params=jax.tree.map(jnp.copy, params),
                    opt_state=make_optimizer(cfg).init(params), key=k_run)


def loss_fn(params: policy.HeadParams, target_params: policy.HeadParams, batch: Batch,
            w_lm: Array, allowed: Array | None, cfg: AgentConfig) -> tuple[Array, dict]:
  """Mean soft-Q loss of the batch and metrics (Q, V, entropy of the online policy)."""
  reg = ops.get_regularizer(cfg.regularizer, cfg.temperature)
  use_filter = cfg.filter_top_k is not None
  mask = policy.action_mask(batch.states, w_lm, batch.thresholds if use_filter else None, allowed)
  q = policy.q_values(params, batch.states, w_lm, cfg.logit_bias)                  # [N, L, V]
  q_target = policy.q_values(target_params, batch.states, w_lm, cfg.logit_bias)
  loss_one = functools.partial(ops.soft_q_loss, cfg.loss, value_fn=reg.value,
                               discount=cfg.discount)
  if mask is None:
    losses = jax.vmap(lambda q_, a, r, qt: loss_one(q_, a, r, qt))(
        q, batch.tokens, batch.rewards, q_target)
  else:
    losses = jax.vmap(lambda q_, a, r, qt, m: loss_one(q_, a, r, qt, mask_t=m))(
        q, batch.tokens, batch.rewards, q_target, mask)
  q_a = jnp.take_along_axis(q, batch.tokens[..., None], axis=-1)[..., 0]
  metrics = {"loss": losses.mean(), "q_taken": q_a.mean(), "reward": batch.rewards.mean()}
  return losses.mean(), metrics


def train_step(state: TrainState, batch: Batch, w_lm: Array, allowed: Array | None, *,
               cfg: AgentConfig) -> tuple[TrainState, dict]:
  """One Polyak target update + one Adam step on the online head (pure; see `make_train_step`)."""
  target = ops.polyak_update(state.params, state.target_params, cfg.polyak_rate)
  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params, target, batch, w_lm, allowed, cfg)
  updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics["grad_norm"] = optax.global_norm(grads)
  return state.replace(step=state.step + 1, params=params, target_params=target,
                       opt_state=opt_state), metrics


def make_train_step(cfg: AgentConfig):
  """jit-compiled (state, batch, w_lm, allowed) -> (state, metrics); donates the old state."""
  return jax.jit(functools.partial(train_step, cfg=cfg), donate_argnums=(0,))


def shape_rewards(raw: Array, cfg: AgentConfig, groups: Array | None = None) -> Array:
  """z-score over the prompts of the step (within `groups` when given, e.g. one per source
  sentence), then the linear rescale (RLPrompt/PIN shaping, methods.md §1.5)."""
  if not cfg.reward_zscore:
    r = raw.astype(jnp.float32)
  elif groups is None:
    r = ops.zscore(raw)
  else:
    groups = jnp.asarray(groups, jnp.int32)
    r = ops.zscore(raw, groups, num_groups=int(groups.max()) + 1)
  return ops.rescale(r, *cfg.reward_old_range, *cfg.reward_new_range)
