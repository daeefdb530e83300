"""NumPy float64 references for hpprompt.ops, written independently of the JAX code.

Each function takes one example (a vector or one trajectory) unless its name says `batch`. Masks are
boolean (False = excluded). Nothing here imports jax or hpprompt.
"""
import itertools

import numpy as np
import scipy.optimize


def _f64(x):
  return np.asarray(x, dtype=np.float64)


def _mask_or_all(z, mask):
  return np.ones(z.shape, bool) if mask is None else np.asarray(mask, bool)


# --- sparsemax family -----------------------------------------------------------------------------


def sparsemax_sort(z, mask=None):
  """Sort rule of Martins & Astudillo (2016), Alg. 1. Returns (p, tau, K)."""
  z = _f64(z)
  mask = _mask_or_all(z, mask)
  zs = np.sort(z[mask])[::-1]                         # descending, unmasked only
  cs = np.cumsum(zs)
  ks = np.arange(1, zs.size + 1)
  k = int(ks[1.0 + ks * zs > cs].max())
  tau = (cs[k - 1] - 1.0) / k
  p = np.where(mask, np.maximum(z - tau, 0.0), 0.0)
  return p, tau, k


def sparsemax_bruteforce(z, mask=None):
  """Exhaustive support search (small V): the unique S with z_S > tau(S) >= z_rest. (p, tau, K)."""
  z = _f64(z)
  mask = _mask_or_all(z, mask)
  idx = np.flatnonzero(mask)
  found = []
  for size in range(1, idx.size + 1):
    for subset in itertools.combinations(idx, size):
      s = np.array(subset)
      tau = (z[s].sum() - 1.0) / size
      rest = np.setdiff1d(idx, s)
      if np.all(z[s] > tau) and np.all(z[rest] <= tau):
        found.append((s, tau))
  assert len(found) == 1, f"support search found {len(found)} supports for {z}"
  s, tau = found[0]
  p = np.zeros_like(z)
  p[s] = z[s] - tau
  return p, tau, s.size


def spmax_formula(z, mask=None):
  """1/2 sum_S (z_i^2 - tau^2) + 1/2 (PIN's `sparse_max_operator`), in float64."""
  z = _f64(z)
  p, tau, _ = sparsemax_sort(z, mask)
  s = p > 0
  return 0.5 * np.sum(z[s] ** 2 - tau ** 2) + 0.5


def spmax_objective(p, z):
  """<p, z> + 1/2 (1 - ||p||^2); its maximum over the simplex is spmax(z)."""
  p, z = _f64(p), _f64(z)
  return p @ z + 0.5 * (1.0 - p @ p)


def spmax_scipy(z):
  """max over the simplex of `spmax_objective` by SLSQP (small V), independent of any sort rule."""
  z = _f64(z)
  n = z.size
  res = scipy.optimize.minimize(
      lambda p: -spmax_objective(p, z), np.full(n, 1.0 / n), jac=lambda p: -(z - p),
      bounds=[(0.0, 1.0)] * n, method="SLSQP",
      constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0, "jac": lambda p: np.ones(n)}],
      options={"ftol": 1e-14, "maxiter": 500})
  assert res.success, res.message
  return -res.fun, res.x


def spmax(z, mask=None, temperature=1.0):
  """alpha * spmax(z / alpha), via the support of the sort rule."""
  return temperature * spmax_formula(_f64(z) / temperature, mask)


def sparsemax(z, mask=None, temperature=1.0):
  return sparsemax_sort(_f64(z) / temperature, mask)[0]


def sparsemax_jacobian(z, mask=None, temperature=1.0):
  """d sparsemax(z / a) / dz = (diag(s) - s s^T / |S|) / a, s the support indicator."""
  s = (sparsemax(z, mask, temperature) > 0).astype(np.float64)
  return (np.diag(s) - np.outer(s, s) / s.sum()) / temperature


def tsallis_entropy(p):
  p = _f64(p)
  return 0.5 * np.sum(p * (1.0 - p))


# --- Shannon family -------------------------------------------------------------------------------


def logsumexp(z, mask=None, temperature=1.0):
  """alpha * log sum_{unmasked} exp(z / alpha), shifted by the max."""
  z = _f64(z) / temperature
  mask = _mask_or_all(z, mask)
  m = z[mask].max()
  return temperature * (m + np.log(np.sum(np.exp(z[mask] - m))))


def softmax(z, mask=None, temperature=1.0):
  z = _f64(z) / temperature
  mask = _mask_or_all(z, mask)
  e = np.where(mask, np.exp(z - z[mask].max()), 0.0)
  return e / e.sum()


def shannon_entropy(p):
  p = _f64(p)
  nz = p > 0
  return -np.sum(p[nz] * np.log(p[nz]))


# --- soft-Q losses (one trajectory, explicit loops over t) ----------------------------------------


def soft_q_loss(variant, q, a, reward, target_q, value_fn, discount=1.0, mask=None,
                target_mask=None, length=None):
  """Transcription of the formulas in hpprompt/ops/soft_q.py's docstring, step by step.

  value_fn(z [V], mask [V] | None) -> float. Steps t >= length are ignored; T below is `length`.
  """
  q, target_q = _f64(q), _f64(target_q)
  n = q.shape[0] if length is None else int(length)
  target_mask = mask if target_mask is None else target_mask
  row = lambda m, t: None if m is None else m[t]
  big_q = [q[t, a[t]] for t in range(n)]
  big_v = [value_fn(q[t], row(mask, t)) for t in range(n)]
  adv = [big_q[t] - big_v[t] for t in range(n)]
  target_v = [value_fn(target_q[t], row(target_mask, t)) for t in range(n)]
  total = 0.0
  for t in range(n):
    disc_r = discount ** (n - 1 - t) * reward
    l1 = (big_q[t] - disc_r) ** 2
    if t < n - 1:
      target_adv = discount * target_v[t + 1] - target_v[t]
    else:
      target_adv = reward - target_v[t]
    l2 = (adv[t] - target_adv) ** 2
    suffix = 0.0
    for k in range(t, n):
      suffix += discount ** (k - t) * adv[k]
    l3 = (suffix - (disc_r - target_v[t])) ** 2
    if variant == "td":
      total += pin_eq5_loss_step(t, n, big_q[t], reward, target_q, target_mask, value_fn, discount)
      continue
    total += {"v1": l1, "v2": l2, "v3": l3, "v2_v3": (l2 + l3) / 2}[variant]
  return total


def pin_eq5_loss_step(t, n, q_taken, reward, target_q, target_mask, value_fn, discount):
  """PIN's Eq. 5 / Algorithm 1 at step t of n: (Q_t - y_t)^2 with y_{n-1} = R and
  y_t = g * V'(s_{t+1}) = g * value_fn(target_q[t + 1] restricted to its filter) otherwise."""
  if t == n - 1:
    y = reward
  else:
    z = _f64(target_q[t + 1])
    if target_mask is not None:
      z = z[np.asarray(target_mask[t + 1], bool)]      # F_I: only the kept actions enter V'
    y = discount * value_fn(z, None)
  return (q_taken - y) ** 2


def rlprompt_batch_loss(variant, logits, target_logits, actions, rewards, lengths, value_fn):
  """NumPy transcription of RLPrompt's sql_losses.py v2 / v3 (g = 1), array style as in the code.

  logits [B, T, V]; returns mean over the batch of the sum over valid steps (`mask_and_reduce`).
  """
  b, n, _ = logits.shape
  ar = np.arange(b)
  big_v = np.array([[value_fn(logits[i, t], None) for t in range(n)] for i in range(b)])
  big_v_ = np.array([[value_fn(target_logits[i, t], None) for t in range(n)] for i in range(b)])
  big_q = np.take_along_axis(logits, actions[..., None], -1)[..., 0]
  adv = big_q - big_v
  seq_mask = np.arange(n)[None, :] < lengths[:, None]
  if variant == "v2":
    adv_ = np.zeros_like(big_q)
    adv_[:, :-1] = big_v_[:, 1:] - big_v_[:, :-1]
    adv_[ar, lengths - 1] = rewards - big_v_[ar, lengths - 1]
    raw = (adv - adv_) ** 2
  elif variant == "v3":
    a2 = np.flip(np.cumsum(np.flip(adv * seq_mask, -1), -1), -1)    # masked_reverse_cumsum
    raw = (a2 - (rewards[:, None] - big_v_)) ** 2
  else:
    raise ValueError(variant)
  return np.mean(np.sum(raw * seq_mask, -1))


def sql_v1_batch_loss(logits, target_logits, actions, rewards, lengths, filter_mask):
  """NumPy transcription of `soft_q_loss_with_sparse_rewards_1` (rlprompt/losses/sql_losses.py:
  110-142, RLPrompt and PIN), which `algo=sql loss_impl=v1` runs, on logits filtered as
  LMAdaptorModel._mlp_forward does (-inf outside `filter_mask`, lm_adaptor_model.py:76-82)."""
  b, n, _ = logits.shape
  ar = np.arange(b)
  logits_ = np.where(filter_mask, target_logits, -np.inf)
  top = logits_.max(-1, keepdims=True)
  big_v_ = np.log(np.sum(np.exp(logits_ - top), -1)) + top[..., 0]          # logsumexp(dim=-1)
  big_q = np.take_along_axis(logits, actions[..., None], -1)[..., 0]
  q_ = np.zeros_like(big_q)
  q_[:, :-1] = big_v_[:, 1:]
  q_[ar, lengths - 1] = rewards
  seq_mask = np.arange(n)[None, :] < lengths[:, None]
  return np.mean(np.sum((big_q - q_) ** 2 * seq_mask, -1))


def pin_v1_batch_loss(logits, actions, rewards, gamma):
  """NumPy transcription of PIN's sparse_ql_loss_1 (full-length trajectories)."""
  big_q = np.take_along_axis(logits, actions[..., None], -1)[..., 0]
  q_ = np.zeros_like(big_q)
  q_[:, -1] += rewards
  q_[:, :-1] = np.flip(np.cumprod(np.full_like(big_q[:, :-1], gamma), -1), -1) * rewards[:, None]
  return np.mean(np.sum((big_q - q_) ** 2, -1))


# --- rewards, InfoNCE, Polyak ---------------------------------------------------------------------


def zscore(r, group_ids=None, eps=1e-4):
  """Loop over groups; population std (np.std), as RLPrompt."""
  r = _f64(r)
  if group_ids is None:
    return (r - r.mean()) / (r.std() + eps)
  out = np.empty_like(r)
  for g in np.unique(group_ids):
    sel = group_ids == g
    out[sel] = (r[sel] - r[sel].mean()) / (r[sel].std() + eps)
  return out


def rescale(x, old_min, old_max, new_min, new_max):
  return (_f64(x) - old_min) / (old_max - old_min) * (new_max - new_min) + new_min


def gap_reward_batch(class_logits, labels, correct_coeff=200.0, incorrect_coeff=180.0):
  """RLPrompt fsc_reward.py `forward`, per-example part, for logits [B, C] -> (rewards, correct)."""
  logits = _f64(class_logits)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  class_probs = e / e.sum(-1, keepdims=True)
  label_probs = class_probs[np.arange(len(labels)), labels]
  not_label_probs = np.where(class_probs == label_probs[:, None], -1.0, class_probs)
  gap = label_probs - not_label_probs.max(-1)
  correct = (gap > 0).astype(np.int64)
  return gap * (correct_coeff * correct + incorrect_coeff * (1 - correct)), correct.astype(bool)


def info_nce(pos, negs, mask=None, temperature=1.0, floor=None):
  scores = np.concatenate([[_f64(pos)], _f64(negs)[_mask_or_all(_f64(negs), mask)]]) / temperature
  m = scores.max()
  logp = scores[0] - (m + np.log(np.sum(np.exp(scores - m))))
  if floor is not None:
    logp = max(logp, floor)
  return -logp


def polyak(online, target, rate):
  """Nested dicts / lists of arrays; (1 - rate) target + rate online."""
  if isinstance(online, dict):
    return {k: polyak(online[k], target[k], rate) for k in online}
  if isinstance(online, (list, tuple)):
    return type(online)(polyak(o, t, rate) for o, t in zip(online, target))
  return (1.0 - rate) * _f64(target) + rate * _f64(online)
