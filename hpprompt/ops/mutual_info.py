"""InfoNCE mutual-information estimators (InfoPrompt, Wu et al. NeurIPS 2023).

InfoNCE with one positive and K negatives ("Representation Learning with Contrastive Predictive
Coding", van den Oord et al. 2018, Eq. 4): L = -log softmax([s+, s-_1..s-_K] / temperature)[0]. InfoPrompt
("InfoPrompt: Information-Theoretic Soft Prompt Tuning for Natural Language Understanding", Wu et al.
2023, https://arxiv.org/abs/2306.04933) uses it for the head loss and the representation loss, with the
per-example log-probability floored at -2 (`max(log p, -2)` in its code: examples already worse than
the floor get zero gradient) and padding negatives pushed down by -100. Here masked negatives are left
out exactly instead of being pushed down by a constant.
"""
import chex
import jax
import jax.numpy as jnp

Array = chex.Array


def info_nce(pos_score: Array, neg_scores: Array, neg_mask: Array | None = None, *,
             temperature: float = 1.0, logp_floor: float | None = None) -> Array:
  """InfoNCE loss of one example: -max(log softmax([s+, s-] / temperature)[0], floor).

  Args:
    pos_score: critic score of the positive pair, scalar.
    neg_scores: critic scores of K negatives, [K].
    neg_mask: optional boolean [K]; False negatives are excluded.
    temperature: scores are divided by it (InfoPrompt: sqrt(d), applied to dot products).
    logp_floor: optional floor on the positive's log-probability (InfoPrompt: -2.0).

  Returns:
    scalar float32 loss (>= 0).
  """
  chex.assert_rank([pos_score, neg_scores], [0, 1])
  chex.assert_type([pos_score, neg_scores], [float, float])
  pos = pos_score.astype(jnp.float32) / temperature
  neg = neg_scores.astype(jnp.float32) / temperature
  if neg_mask is not None:
    chex.assert_equal_shape([neg_scores, neg_mask])
    neg = jnp.where(neg_mask, neg, -jnp.inf)
  logp = pos - jax.nn.logsumexp(jnp.concatenate([pos[None], neg]))
  if logp_floor is not None:
    logp = jnp.maximum(logp, logp_floor)
  return -logp
