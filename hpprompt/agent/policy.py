"""The prompt policy: a frozen LM plus a small trainable MLP head giving Q-values over the vocabulary.

RLPrompt `LMAdaptorModel` (PIN `LMFilterModel`): e_t is the frozen LM's final hidden state at the last
prompt token; Q(s_t, .) = W_LM MLP(e_t) + b, with MLP = Linear(D, H) -> ReLU -> Linear(H, D) whose
output replaces e_t, W_LM the frozen (tied) LM head, b a constant logit bias. Initialisation:
xavier_uniform(gain=1e-4) weights and -1e-4 biases, so all Q-values start near 0.

The head is a plain pytree of arrays and every function here is pure, so the learner is a function of
(e_t, a_t, R) only: the LM is frozen and e_t does not depend on the head (methods.md §3.3, step 4).
"""
import chex
import jax
import jax.numpy as jnp

Array = chex.Array
HeadParams = dict   # {"fc1": {"kernel": [D, H], "bias": [H]}, "fc2": {"kernel": [H, D], "bias": [D]}}

_INIT_GAIN = 1e-4
_INIT_BIAS = -1e-4


def init_head(key: Array, dim: int, hidden: int, dtype=jnp.float32) -> HeadParams:
  """RLPrompt `_build_one_layer_mlp` + `_init_weights` (xavier_uniform gain 1e-4, bias -1e-4)."""
  k1, k2 = jax.random.split(key)

  def xavier(k, fan_in, fan_out):
    limit = _INIT_GAIN * (6.0 / (fan_in + fan_out)) ** 0.5
    return jax.random.uniform(k, (fan_in, fan_out), dtype, -limit, limit)

  return {"fc1": {"kernel": xavier(k1, dim, hidden), "bias": jnp.full((hidden,), _INIT_BIAS, dtype)},
          "fc2": {"kernel": xavier(k2, hidden, dim), "bias": jnp.full((dim,), _INIT_BIAS, dtype)}}


def head_apply(params: HeadParams, state: Array) -> Array:
  """MLP(e) for states [..., D] -> [..., D]."""
  h = jax.nn.relu(state @ params["fc1"]["kernel"] + params["fc1"]["bias"])
  return h @ params["fc2"]["kernel"] + params["fc2"]["bias"]


def q_values(params: HeadParams, state: Array, w_lm: Array, logit_bias: float = 0.0) -> Array:
  """Q(s, .) = W_LM MLP(e) + b for states [..., D] and W_LM [V, D] -> [..., V] (float32)."""
  return (head_apply(params, state) @ w_lm.T).astype(jnp.float32) + logit_bias


def frozen_logits(state: Array, w_lm: Array) -> Array:
  """The frozen LM's own next-token logits W_LM e [..., V] (what the ignorable-token filter ranks)."""
  return (state @ w_lm.T).astype(jnp.float32)


def filter_threshold(state: Array, w_lm: Array, k: int) -> Array:
  """k-th largest frozen logit per state [...]: PIN keeps tokens with W_LM e >= it (top-k filter).

  Read as the min of the top k: `[..., -1]` compiles to a full sort of every row on XLA:CPU
  (115 vs 41 ms at 16 x 49k, k = 10,000; 115 vs 1 ms at k = 50).
  """
  return jnp.min(jax.lax.top_k(frozen_logits(state, w_lm), k)[0], axis=-1)


def action_mask(state: Array, w_lm: Array, threshold: Array | None,
                allowed: Array | None) -> Array | None:
  """Boolean [..., V] of actions the policy may take: allowed tokens inside the filter (or None).

  Args:
    state: e_t [..., D].
    w_lm: [V, D].
    threshold: per-state filter threshold [...] from `filter_threshold`, or None (no filter).
    allowed: static boolean [V] of tokens that may be sampled at all, or None.
  """
  mask = None
  if threshold is not None:
    mask = frozen_logits(state, w_lm) >= threshold[..., None]
  if allowed is not None:
    mask = allowed if mask is None else mask & allowed
    mask = jnp.broadcast_to(mask, state.shape[:-1] + allowed.shape)
  return mask
