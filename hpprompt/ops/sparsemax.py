"""Sparsemax policy, its threshold, the spmax value and the sparse Tsallis entropy.

For logits z over a vocabulary (optionally restricted by a boolean mask):

  sparsemax(z) = argmin_{p in simplex} ||p - z||^2 = max(z - tau(z), 0)
  tau(z)       = (sum_{i in S} z_i - 1) / |S|,  S = {i : z_i > tau(z)}   (the support)
  spmax(z)     = max_{p in simplex} <p, z> + 1/2 (1 - ||p||^2)
               = 1/2 sum_{i in S} (z_i^2 - tau^2) + 1/2 = tau + 1/2 + 1/2 ||p||^2,
  grad spmax = sparsemax.

With a temperature alpha the value is alpha * spmax(z / alpha) and the policy sparsemax(z / alpha).

See "From Softmax to Sparsemax" by Martins & Astudillo (ICML 2016, https://arxiv.org/abs/1602.02068),
"Sparse Markov Decision Processes with Causal Sparse Tsallis Entropy Regularization" by Lee, Choi & Oh
(RA-L 2018, https://arxiv.org/abs/1709.06293) and "Hard Prompts with Sparse Entropy ... (PIN)" by Choi et
al. (ACL 2024, https://arxiv.org/abs/2407.14733), Sec. 4 (spmax target, Eq. 5).

Algorithm. A full sort of a 50k vocabulary is slow on CPU (15 s for a [1280, 50272] batch with
`optax.projections.projection_simplex`). The support of a sparsemax over LM logits is small, so tau is
computed from `lax.top_k(z, top_k)` with the sort rule; it is exact whenever the k-th largest value is
<= tau (a certificate that costs nothing). When it is not (support >= k, e.g. near-uniform logits),
Michelot's fixed-point iteration tau <- (sum_{z > tau} z - 1) / |{z > tau}| runs over the full vector,
started from the top-k tau, which is a lower bound of the true tau, so it rises monotonically to the
exact value in a few passes. Under `vmap` the loop runs only while some row still needs it.
`benchmarks/ops_bench.py` measures this against optax and a sort-based PyTorch reference.

All functions take one logit vector (rank 1); batch them with `jax.vmap`. Arithmetic is float32 for
float32 and bfloat16 inputs; outputs take the input dtype. A mask that excludes every entry gives NaN
(there is no distribution over an empty set), as do NaN logits.
"""
import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

Array = chex.Array

DEFAULT_TOP_K = 64
_MAX_FALLBACK_ITERS = 10_000


class Threshold(NamedTuple):
  """The sparsemax threshold of one logit vector and its support size."""
  tau: Array           # scalar float32
  support_size: Array  # scalar int32, |S|


def _check(logits: Array, mask: Array | None) -> None:
  chex.assert_rank(logits, 1)
  chex.assert_type(logits, float)
  if mask is not None:
    chex.assert_equal_shape([logits, mask])
    chex.assert_type(mask, bool)


def _masked(z: Array, mask: Array | None) -> Array:
  return z if mask is None else jnp.where(mask, z, -jnp.inf)


def _sum(x: Array, chunk: int = 8) -> Array:
  """Sum of a long vector as [n/chunk, chunk]: XLA:CPU vectorises this ~3x better than a flat sum."""
  x = jnp.pad(x, (0, (-x.shape[0]) % chunk))
  return x.reshape(-1, chunk).sum(0).sum()


def _threshold(z: Array, top_k: int) -> Threshold:
  """Exact sparsemax threshold of float32 `z` (masked entries already -inf); no gradient."""
  z = jax.lax.stop_gradient(z)
  k = min(top_k, z.shape[0])
  v, _ = jax.lax.top_k(z, k)                               # descending
  finite = v != -jnp.inf          # top_k puts NaN first: NaN logits make tau NaN below
  v0 = jnp.where(finite, v, 0.0)
  cs = jnp.cumsum(v0)
  j = jnp.arange(1, k + 1, dtype=z.dtype)
  cond = finite & (1.0 + j * v0 > cs)                      # sort rule: a prefix of the top-k
  size = jnp.max(jnp.where(cond, jnp.arange(1, k + 1), 0)).astype(jnp.int32)
  in_s = jnp.arange(k) < size
  tau = (jnp.sum(jnp.where(in_s, v0, 0.0)) - 1.0) / size
  tau = jnp.where(size > 0, tau, jnp.nan)                   # everything masked (or NaN logits)
  # Certificate: every entry outside the top-k is <= v[k-1] <= tau, so the support is inside.
  # (min(v) is v[k-1]; indexing v[k-1] directly makes XLA compile top_k as a full sort.)
  exact = (k == z.shape[0]) | (jnp.min(v) <= tau) | jnp.isnan(tau)

  def not_done(c):
    return ~c[3]

  def michelot_step(c):
    tau, size, it, _ = c
    s = z > tau
    new_size = _sum(s.astype(jnp.int32))
    new_tau = (_sum(jnp.where(s, z, 0.0)) - 1.0) / new_size
    done = (new_size == size) | (it >= _MAX_FALLBACK_ITERS)
    # tau only rises (started below the fixed point); max() guards against rounding.
    return jnp.maximum(new_tau, tau), new_size, it + 1, done

  tau, size, _, _ = jax.lax.while_loop(not_done, michelot_step, (tau, size, jnp.int32(0), exact))
  return Threshold(tau, size)


# The custom_jvp functions take the masked logits only (masked entries -inf): passing a mask array
# into a custom_jvp breaks jit(vmap(...)) when the mask is a closed-over NumPy constant (jax 0.10).


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sparsemax(z: Array, top_k: int) -> Array:
  # Masked entries are -inf -> 0; an all-masked vector has tau = NaN -> NaN everywhere.
  return jnp.maximum(z - _threshold(z, top_k).tau, 0.0)


@_sparsemax.defjvp
def _sparsemax_jvp(top_k, primals, tangents):
  (z,), (dz,) = primals, tangents
  p = _sparsemax(z, top_k)
  s = (p > 0).astype(z.dtype)
  # Jacobian of sparsemax: diag(s) - s s^T / |S|  (Martins & Astudillo 2016, Eq. 12).
  dp = s * dz - s * jnp.sum(s * dz) / jnp.sum(s)
  return p, dp


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _spmax(z: Array, top_k: int) -> Array:
  # tau + 1/2 + 1/2 sum_S (z_i - tau)^2 equals 1/2 sum_S (z_i^2 - tau^2) + 1/2 (z = p + tau on S)
  # without cancelling terms of size z^2: accurate for shifted or large logits.
  tau = _threshold(z, top_k).tau
  p = jnp.maximum(z - tau, 0.0)
  return tau + 0.5 + 0.5 * _sum(p * p)


@_spmax.defjvp
def _spmax_jvp(top_k, primals, tangents):
  (z,), (dz,) = primals, tangents
  return _spmax(z, top_k), jnp.sum(_sparsemax(z, top_k) * dz)


def sparsemax(logits: Array, mask: Array | None = None, *, temperature: float = 1.0,
              top_k: int = DEFAULT_TOP_K) -> Array:
  """Sparsemax policy max(z/alpha - tau(z/alpha), 0) (Martins & Astudillo 2016, Eq. 2; PIN Sec. 4).

  Args:
    logits: Q-values or logits z of one state, shape [V].
    mask: optional boolean [V]; False entries get probability 0 and never enter the support.
    temperature: alpha > 0.
    top_k: size of the top set searched first (exactness does not depend on it, only speed).

  Returns:
    probabilities [V] with the dtype of `logits`; they sum to 1 over the support.
  """
  _check(logits, mask)
  z = _masked(logits.astype(jnp.float32) / temperature, mask)
  return _sparsemax(z, top_k).astype(logits.dtype)


def sparsemax_threshold(logits: Array, mask: Array | None = None, *, temperature: float = 1.0,
                        top_k: int = DEFAULT_TOP_K) -> tuple[Array, Array]:
  """Threshold tau(z/alpha) and support size |S| of sparsemax (Martins & Astudillo 2016, Eq. 4).

  Returns:
    (tau, support_size): float32 scalar (in units of z/alpha) and int32 scalar.
  """
  _check(logits, mask)
  z = logits.astype(jnp.float32) / temperature
  t = _threshold(_masked(z, mask), top_k)
  return t.tau, t.support_size


def spmax(logits: Array, mask: Array | None = None, *, temperature: float = 1.0,
          top_k: int = DEFAULT_TOP_K) -> Array:
  """Sparse Tsallis value alpha * spmax(z / alpha) (Lee et al. 2018, Eq. 9; PIN Eq. 5 target).

  spmax(z) = 1/2 sum_{i in S}(z_i^2 - tau^2) + 1/2 = <p, z> + 1/2 (1 - ||p||^2), p = sparsemax(z);
  its gradient with respect to the logits is sparsemax(z / alpha).

  Returns:
    scalar with the dtype of `logits`.
  """
  _check(logits, mask)
  z = _masked(logits.astype(jnp.float32) / temperature, mask)
  return (temperature * _spmax(z, top_k)).astype(logits.dtype)


def tsallis_entropy(probs: Array) -> Array:
  """Sparse Tsallis entropy (q = 2, k = 1/2): W(p) = 1/2 sum_a p_a (1 - p_a) = 1/2 (1 - ||p||^2).

  See Lee, Choi & Oh 2018, Eq. 3, and PIN Sec. 4.1 (S_2). With temperature alpha the value decomposes
  as alpha * spmax(z / alpha) = <p, z> + alpha * W(p) for p = sparsemax(z / alpha).
  """
  chex.assert_rank(probs, 1)
  chex.assert_type(probs, float)
  p = probs.astype(jnp.float32)
  return (0.5 * (1.0 - jnp.sum(p * p))).astype(probs.dtype)
