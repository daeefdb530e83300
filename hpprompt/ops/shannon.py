"""Shannon-entropy counterparts of the sparsemax family: softmax policy, log-sum-exp value, entropy.

With temperature alpha: policy softmax(z / alpha), value alpha * logsumexp(z / alpha) and
alpha * logsumexp(z / alpha) = <p, z> + alpha * H(p). This is the soft-Q (maximum-entropy) value of
RLPrompt: "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement Learning" by Deng et al.
(EMNLP 2022, https://arxiv.org/abs/2205.12548), Sec. 2.2, following "Efficient (Soft) Q-Learning for Text
Generation with Limited Good Data" by Guo et al. (2021, https://arxiv.org/abs/2106.07704), Eq. 3-4.

Same signatures as `sparsemax.py`: one logit vector [V], optional boolean mask (False entries get
probability 0 and are left out of the log-sum-exp), float32 arithmetic, outputs in the input dtype.
An all-masked vector gives NaN probabilities and a -inf value.
"""
import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def _prepare(logits: Array, mask: Array | None, temperature: float) -> Array:
  chex.assert_rank(logits, 1)
  chex.assert_type(logits, float)
  z = logits.astype(jnp.float32) / temperature
  if mask is not None:
    chex.assert_equal_shape([logits, mask])
    chex.assert_type(mask, bool)
    z = jnp.where(mask, z, -jnp.inf)
  return z


def softmax(logits: Array, mask: Array | None = None, *, temperature: float = 1.0) -> Array:
  """Boltzmann policy softmax(z / alpha) over the unmasked entries (Guo et al. 2021, Eq. 4)."""
  return jax.nn.softmax(_prepare(logits, mask, temperature)).astype(logits.dtype)


def logsumexp(logits: Array, mask: Array | None = None, *, temperature: float = 1.0) -> Array:
  """Soft value alpha * logsumexp(z / alpha) over the unmasked entries (Guo et al. 2021, Eq. 3)."""
  z = _prepare(logits, mask, temperature)
  return (temperature * jax.nn.logsumexp(z)).astype(logits.dtype)


def shannon_entropy(probs: Array) -> Array:
  """Shannon entropy H(p) = -sum_a p_a log p_a, with 0 log 0 = 0."""
  chex.assert_rank(probs, 1)
  chex.assert_type(probs, float)
  p = probs.astype(jnp.float32)
  return (-jnp.sum(jax.scipy.special.xlogy(p, p))).astype(probs.dtype)
