"""Sampling L-token prompts from the policy inside one jitted `lax.scan` with the LM's KV cache.

Step t feeds the previous token (BOS at t = 0) to the frozen LM, takes its final hidden state e_t,
forms Q_t = W_LM MLP(e_t) + b and the action mask (allowed tokens, and PIN's top-k filter of the frozen
logits), and draws a_t from the regulariser's policy over the masked Q_t:
  RLPrompt: softmax restricted to the top `sampling_top_k` Q-values (top-k sampling);
  PIN:      sparsemax over the filtered Q-values, sampled exactly.
Greedy decoding (evaluation) takes argmax of the masked Q_t; `forced` tokens replay a given prompt
(its states and filter thresholds: the trajectory of a starting prompt, `warm_start`). RLPrompt
re-tokenizes each sampled token's string before feeding it back; we feed the id (identical unless
the string re-tokenizes differently).
"""
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt.agent import policy
from hpprompt.agent.config import AgentConfig
from hpprompt.ops import get_regularizer

Array = chex.Array


class Rollout(NamedTuple):
  tokens: Array      # [B, L] int32 actions a_t
  states: Array      # [B, L, D] e_t
  thresholds: Array  # [B, L] filter thresholds (-inf without filter)


def _sampling_logp(q: Array, mask: Array | None, cfg: AgentConfig) -> Array:
  """Log-probabilities [B, V] of the behaviour policy (zeros -> -inf)."""
  reg = get_regularizer(cfg.regularizer, cfg.temperature)
  if cfg.sampling_top_k is not None:
    # The min of the top k, not [..., -1:]: XLA:CPU compiles the latter as a full sort of each row.
    kth = jnp.min(jax.lax.top_k(jnp.where(mask, q, -jnp.inf) if mask is not None else q,
                                cfg.sampling_top_k)[0], axis=-1, keepdims=True)
    top = q >= kth
    mask = top if mask is None else mask & top
  if mask is None:
    probs = jax.vmap(lambda z: reg.policy(z, None))(q)
  else:
    probs = jax.vmap(reg.policy)(q, mask)
  return jnp.where(probs > 0, jnp.log(jnp.maximum(probs, 1e-38)), -jnp.inf)


def rollout(lm: nnx.Module, params: policy.HeadParams, key: Array, *, cfg: AgentConfig,
            batch: int, bos_id: int, allowed: Array | None, greedy: bool = False,
            forced: Array | None = None) -> Rollout:
  """Samples `batch` prompts of `cfg.prompt_length` tokens (pure; jit it with `make_sampler`);
  with `forced` [batch, L] the actions are those tokens."""
  length = cfg.prompt_length
  w_lm = lm.output_embedding()
  cache = lm.init_cache(batch, length)
  first = jnp.full((batch, 1), bos_id, jnp.int32)

  def step(carry, xs):
    key_t, forced_t = xs
    cache, token = carry
    out = lm(token, cache=cache, compute_logits=False)
    e = jax.lax.stop_gradient(out.hidden[:, -1])                        # [B, D]
    thr = (policy.filter_threshold(e, w_lm, cfg.filter_top_k) if cfg.filter_top_k
           else jnp.full((batch,), -jnp.inf))
    mask = policy.action_mask(e, w_lm, thr if cfg.filter_top_k else None, allowed)
    q = policy.q_values(params, e, w_lm, cfg.logit_bias)
    if forced is not None:
      a = forced_t
    elif greedy:
      a = jnp.argmax(q if mask is None else jnp.where(mask, q, -jnp.inf), axis=-1)
    else:
      a = jax.random.categorical(key_t, _sampling_logp(q, mask, cfg), axis=-1)
    a = a.astype(jnp.int32)
    return (out.cache, a[:, None]), (a, e, thr)

  forced_t = (jnp.zeros((length, batch), jnp.int32) if forced is None
              else jnp.asarray(forced, jnp.int32).T)
  _, (tokens, states, thresholds) = jax.lax.scan(step, (cache, first),
                                                 (jax.random.split(key, length), forced_t))
  return Rollout(tokens.T, states.transpose(1, 0, 2), thresholds.T)


def make_sampler(lm: nnx.Module, *, cfg: AgentConfig, bos_id: int, allowed: Array | None):
  """jit-compiled (lm_state, head_params, key, greedy, forced) -> Rollout over `nnx.split(lm)`
  state."""
  graphdef, _ = nnx.split(lm)

  @functools.partial(jax.jit, static_argnames=("batch", "greedy"))
  def sample(lm_state, params, key, batch: int, greedy: bool = False, forced=None) -> Rollout:
    return rollout(nnx.merge(graphdef, lm_state), params, key, cfg=cfg, batch=batch,
                   bos_id=bos_id, allowed=allowed, greedy=greedy, forced=forced)
  return sample
