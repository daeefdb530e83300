"""Soft-Q losses (v1, v2, v3, v2_v3, td) against step-by-step NumPy loops and RLPrompt / PIN
code."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref

B, T, V = 4, 5, 12
VARIANTS = ops.SOFT_Q_VARIANTS
REF_VALUES = {"shannon": ref.logsumexp, "tsallis": ref.spmax}


@functools.partial(jax.jit, static_argnames=("family", "discount", "temperature"))
def _losses(q, a, r, tq, mask, tmask, length, *, family, discount, temperature=1.0):
  """{variant: [B]} with masks and lengths given (all-True / T for 'none')."""
  value_fn = ops.get_regularizer(family, temperature).value

  def one(q, a, r, tq, m, tm, n):
    return {v: ops.soft_q_loss(v, q, a, r, tq, value_fn=value_fn, discount=discount, mask_t=m,
                               target_mask_t=tm, length=n) for v in VARIANTS}
  return jax.vmap(one)(q, a, r, tq, mask, tmask, length)


@functools.partial(jax.jit, static_argnames="family")
def _losses_defaults(q, a, r, tq, mask, *, family):
  """{variant: ([B], [B])}: every optional argument at its default; only `mask_t` given."""
  value_fn = ops.get_regularizer(family).value
  out = {}
  for v in ("v1", "v2_v3"):          # v2_v3 runs every value computation of v2 and v3
    loss = functools.partial(ops.soft_q_loss, v, value_fn=value_fn)
    out[v] = (jax.vmap(loss)(q, a, r, tq),
              jax.vmap(lambda q, a, r, tq, m: loss(q, a, r, tq, mask_t=m))(q, a, r, tq, mask))
  return out


def _batch(seed, masked=True):
  rng = np.random.default_rng(seed)
  q = (rng.normal(size=(B, T, V)) * 2).astype(np.float32)
  tq = (q + rng.normal(size=q.shape)).astype(np.float32)
  a = rng.integers(0, V, size=(B, T)).astype(np.int32)
  r = (rng.normal(size=B) * 3).astype(np.float32)
  if masked:
    mask = rng.random((B, T, V)) < 0.6
    tmask = rng.random((B, T, V)) < 0.6
    np.put_along_axis(mask, a[..., None], True, -1)         # the taken action is allowed
    tmask[..., 0] = True
  else:
    mask = tmask = np.ones((B, T, V), bool)
  return q, a, r, tq, mask, tmask


def _ref_losses(variant, q, a, r, tq, mask, tmask, length, family, discount, temperature=1.0):
  value_fn = lambda z, m: REF_VALUES[family](z, m, temperature)
  return np.array([ref.soft_q_loss(variant, q[i], a[i], r[i], tq[i], value_fn, discount,
                                   mask[i], tmask[i], length[i]) for i in range(q.shape[0])])


@pytest.mark.parametrize("family", ["shannon", "tsallis"])
@pytest.mark.parametrize("discount, temperature", [(1.0, 1.0), (0.9, 0.5)])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_loops(family, discount, temperature, masked):
  q, a, r, tq, mask, tmask = _batch(0, masked)
  for length in (np.full(B, T), np.array([T, 3, 1, 4])):
    got = _losses(q, a, r, tq, mask, tmask, length, family=family, discount=discount,
                  temperature=temperature)
    for v in VARIANTS:
      chex.assert_shape(got[v], (B,))
      want = _ref_losses(v, q, a, r, tq, mask, tmask, length, family, discount, temperature)
      np.testing.assert_allclose(got[v], want, rtol=2e-5, atol=1e-4, err_msg=f"{v} {length}")
    np.testing.assert_allclose(got["v2_v3"], (got["v2"] + got["v3"]) / 2, rtol=1e-6)


@pytest.mark.parametrize("family", ["shannon", "tsallis"])
def test_defaults_are_no_mask_full_length_target_mask_equal_mask(family):
  q, a, r, tq, mask, _ = _batch(2)
  ones = np.ones(q.shape, bool)
  got = _losses_defaults(q, a, r, tq, mask, family=family)
  # Same static arguments as in test_matches_loops: no new compilation.
  full = _losses(q, a, r, tq, ones, ones, np.full(B, T), family=family, discount=1.0,
                 temperature=1.0)
  same = _losses(q, a, r, tq, mask, mask, np.full(B, T), family=family, discount=1.0,
                 temperature=1.0)
  for v in got:
    np.testing.assert_allclose(got[v][0], full[v], rtol=1e-6)
    np.testing.assert_allclose(got[v][1], same[v], rtol=1e-6)      # target_mask_t <- mask_t


def test_hand_fixture_tsallis():
  """T = 2, V = 3, R = 1.5. By hand (methods.md Sec. 3.2 fixtures for spmax):
  z_0 = [1, .8, .1]: V_0 = 1.16;  z_1 = [2, 1, .1]: V_1 = 2;  Q_0 = z_0[0] = 1, Q_1 = z_1[1] = 1;
  A = [-0.16, -1];  z'_0 = [0, 0, 0]: V'_0 = 1/3;  z'_1 = [.5, .5, -3]: V'_1 = 0.75.
  g = 1:   v1 = (1 - 1.5)^2 * 2 = 0.5
           v2 = (-0.16 - (0.75 - 1/3))^2 + (-1 - (1.5 - 0.75))^2 = 0.3325444 + 3.0625
           v3 = (-1.16 - (1.5 - 1/3))^2 + (-1 - 0.75)^2 = 5.4133778 + 3.0625
  g = 0.9: v1 = (1 - 1.35)^2 + 0.25 = 0.3725
           v2 = (-0.16 - (0.675 - 1/3))^2 + 3.0625 = 0.2516694 + 3.0625
           v3 = (-0.16 - 0.9 - (1.35 - 1/3))^2 + 3.0625 = 4.3125444 + 3.0625
  td (PIN Eq. 5): Q_0 onto g V'_1, Q_1 onto R:
  g = 1:   td = (1 - 0.75)^2 + (1 - 1.5)^2 = 0.3125;   g = 0.9: (1 - 0.675)^2 + 0.25 = 0.355625
  """
  q = jnp.asarray([[1.0, 0.8, 0.1], [2.0, 1.0, 0.1]])
  tq = jnp.asarray([[0.0, 0.0, 0.0], [0.5, 0.5, -3.0]])
  a = jnp.asarray([0, 1])
  r = jnp.asarray(1.5)
  want = {
      1.0: {"v1": 0.5, "v2": 3.3950444, "v3": 8.4758778, "td": 0.3125},
      0.9: {"v1": 0.3725, "v2": 3.3141694, "v3": 7.3750444, "td": 0.355625},
  }
  value_fn = ops.tsallis_regularizer().value
  got = jax.jit(lambda q, a, r, tq: {
      (g, v): ops.soft_q_loss(v, q, a, r, tq, value_fn=value_fn, discount=g)
      for g in want for v in VARIANTS})(q, a, r, tq)
  for discount, losses in want.items():
    losses["v2_v3"] = (losses["v2"] + losses["v3"]) / 2
    for v, x in losses.items():
      np.testing.assert_allclose(got[discount, v], x, atol=2e-6, err_msg=f"{v} g={discount}")
      np.testing.assert_allclose(
          ref.soft_q_loss(v, q, a, 1.5, tq, ref.spmax, discount), x, atol=1e-6)


def test_td_hand_fixture_with_filter():
  """PIN Eq. 5 with F_I: V'_1 over the kept actions only. z'_1 = [.5, .5, -3] with action 1
  filtered out at s_1: spmax([.5, -3]) = 0.5 (K = 1), so td = (1 - 0.5)^2 + (1 - 1.5)^2 = 0.5; the
  filter at s_0 does not enter (only V'_{t+1} is used), and the online mask does not either."""
  q = jnp.asarray([[1.0, 0.8, 0.1], [2.0, 1.0, 0.1]])
  tq = jnp.asarray([[0.0, 0.0, 0.0], [0.5, 0.5, -3.0]])
  a, r = jnp.asarray([0, 1]), jnp.asarray(1.5)
  tmask = jnp.asarray([[False, True, True], [True, False, True]])
  value_fn = ops.tsallis_regularizer().value
  got = ops.soft_q_td(q, a, r, tq, value_fn=value_fn, target_mask_t=tmask,
                      mask_t=jnp.ones((2, 3), bool))
  np.testing.assert_allclose(got, 0.5, atol=2e-6)
  np.testing.assert_allclose(
      ref.soft_q_loss("td", q, a, 1.5, tq, ref.spmax, 1.0, None, np.asarray(tmask)), 0.5, atol=1e-9)
  # td ignores V_t of the online network: its gradient reaches only the taken actions' Q.
  grad = jax.grad(lambda q: ops.soft_q_td(q, a, r, tq, value_fn=value_fn))(q)
  np.testing.assert_allclose(grad, [[2 * (1 - 0.75), 0, 0], [0, 2 * (1 - 1.5), 0]], atol=1e-6)


def test_matches_rlprompt_and_pin_code():
  """discount = 1: batch mean equals NumPy transcriptions of sql_losses.py (RLPrompt, logsumexp)
  and sparse_ql_losses.py (PIN, spmax), including shorter sequences; PIN's v1 with gamma = 0.9."""
  q, a, r, tq, _, _ = _batch(3, masked=False)
  ones = np.ones(q.shape, bool)
  for length in (np.full(B, T), np.array([T, 3, 1, 4])):
    for family in ("shannon", "tsallis"):
      got = _losses(q, a, r, tq, ones, ones, length, family=family, discount=1.0, temperature=1.0)
      for v in ("v2", "v3"):
        want = ref.rlprompt_batch_loss(v, q.astype(np.float64), tq.astype(np.float64), a, r,
                                       length, REF_VALUES[family])
        np.testing.assert_allclose(np.mean(got[v]), want, rtol=2e-5, err_msg=f"{family} {v}")
  # v1 does not use the value: the compiled (0.9, 0.5) function of test_matches_loops serves.
  got = _losses(q, a, r, tq, ones, ones, np.full(B, T), family="tsallis", discount=0.9,
                temperature=0.5)
  np.testing.assert_allclose(np.mean(got["v1"]), ref.pin_v1_batch_loss(q, a, r, 0.9), rtol=2e-5)


def test_td_with_logsumexp_is_the_sql_v1_of_pins_readme_command():
  """`pin-readme`'s loss (td, Shannon value, target V' over the filter) equals the NumPy
  transcription of `soft_q_loss_with_sparse_rewards_1` on filtered logits, full and short
  lengths."""
  q, a, r, tq, mask, _ = _batch(7)
  for length in (np.full(B, T), np.array([T, 2, 1, 4])):
    got = _losses(q, a, r, tq, mask, mask, length, family="shannon", discount=1.0)["td"]
    want = ref.sql_v1_batch_loss(q.astype(np.float64), tq.astype(np.float64), a, r, length, mask)
    np.testing.assert_allclose(np.mean(got), want, rtol=2e-5)


def test_wrappers_equal_soft_q_loss():
  q, a, r, tq, mask, _ = _batch(4)
  value_fn = ops.shannon_regularizer().value
  wrappers = {"v1": ops.soft_q_v1, "v2": ops.soft_q_v2, "v3": ops.soft_q_v3,
              "v2_v3": ops.soft_q_v2_v3, "td": ops.soft_q_td}

  @jax.jit
  def both(q, a, r, tq, m):
    kw = dict(value_fn=value_fn, discount=0.9, mask_t=m, length=3)
    return {v: (w(q, a, r, tq, **kw), ops.soft_q_loss(v, q, a, r, tq, **kw))
            for v, w in wrappers.items()}

  for v, (x, y) in both(q[0], a[0], r[0], tq[0], mask[0]).items():
    assert float(x) == float(y), v


# --- gradients ------------------------------------------------------------------------------------


def _separated_logits(rng, temperature=1.0, margin=0.05):
  """[T, V] logits with every z/a at least `margin` away from its sparsemax threshold."""
  rows = []
  while len(rows) < T:
    z = rng.normal(size=V) * 2
    _, tau, _ = ref.sparsemax_sort(z / temperature)
    if np.min(np.abs(z / temperature - tau)) > margin:
      rows.append(z)
  return jnp.asarray(np.stack(rows), jnp.float32)


@pytest.mark.parametrize("family", ["shannon", "tsallis"])
def test_check_grads(family):
  """Finite differences of the v2_v3 loss w.r.t. q_t (away from the sparsemax kinks)."""
  rng = np.random.default_rng(5)
  q = _separated_logits(rng)
  tq = _separated_logits(rng)
  a = jnp.asarray(rng.integers(0, V, size=T), jnp.int32)
  value_fn = ops.get_regularizer(family).value
  loss = jax.jit(lambda q: ops.soft_q_loss("v2_v3", q, a, jnp.float32(1.3), tq, value_fn=value_fn,
                                           discount=0.9, length=4))
  kw = dict(eps=1e-3, atol=2e-2, rtol=2e-2)
  if family == "shannon":
    jax.test_util.check_grads(loss, (q,), order=2, modes=("rev",), **kw)
  else:                                   # piecewise quadratic: order 1
    jax.test_util.check_grads(loss, (q,), order=1, modes=("fwd", "rev"), **kw)


def _ref_grad(f, x, eps=1e-6):
  """Central differences of a float64 NumPy function."""
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    d = np.zeros_like(x)
    d[i] = eps
    g[i] = (f(x + d) - f(x - d)) / (2 * eps)
  return g


@pytest.mark.parametrize("family", ["shannon", "tsallis"])
def test_stop_target_gradients(family):
  q, a, r, tq, mask, tmask = _batch(6)
  q, a, r, tq, mask, tmask = q[0], a[0], r[0], tq[0], mask[0], tmask[0]
  value_fn = ops.get_regularizer(family).value
  a_j, mask_j, tmask_j = jnp.asarray(a), jnp.asarray(mask), jnp.asarray(tmask)

  @jax.jit
  def grads(q, r, tq):
    out = {}
    for v in VARIANTS:
      for stop in (True, False) if v in ("v1", "v2_v3", "td") else (True,):
        loss = lambda q, r, tq: ops.soft_q_loss(v, q, a_j, r, tq, value_fn=value_fn, mask_t=mask_j,
                                                target_mask_t=tmask_j, stop_target_gradients=stop)
        out[v, stop] = jax.grad(loss, argnums=(0, 1, 2))(q, r, tq)
    return out

  out = jax.tree.map(np.asarray, grads(q, r, tq))
  onehot = np.zeros((T, V), bool)
  onehot[np.arange(T), a] = True
  for v in VARIANTS:
    g_q, g_r, g_tq = out[v, True]
    assert not np.any(g_tq) and g_r == 0.0, v
    if v in ("v1", "td"):          # no V_t: only the taken actions' Q-values
      assert np.all(g_q[onehot] != 0) and not np.any(g_q[~onehot])
    else:
      # Through V_t the gradient reaches every allowed logit (Shannon) or the support (Tsallis),
      # never a masked-out one.
      assert not np.any(g_q[~mask]), v
      if family == "shannon":
        assert np.all(g_q[mask] != 0), v
      else:
        assert np.any(g_q[mask & ~onehot]), v
    # Against finite differences of the float64 loop reference.
    value_fn = REF_VALUES[family]
    ref_loss = lambda q_, r_, tq_: ref.soft_q_loss(v, q_, a, r_, tq_, value_fn, 1.0, mask, tmask)
    np.testing.assert_allclose(g_q, _ref_grad(lambda x: ref_loss(x, r, tq), q), atol=2e-4)
    if (v, False) not in out:
      continue
    g_q2, g_r2, g_tq2 = out[v, False]
    np.testing.assert_allclose(g_q2, g_q, rtol=1e-6)
    np.testing.assert_allclose(g_r2, _ref_grad(lambda x: ref_loss(q, x, tq), r), rtol=1e-4)
    assert g_r2 != 0.0, v
    if v != "v1":
      assert np.any(g_tq2) and not np.any(g_tq2[~tmask]), v
      np.testing.assert_allclose(g_tq2, _ref_grad(lambda x: ref_loss(q, r, x), tq), atol=2e-4)


# --- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_raise():
  q, a, r, tq, mask, _ = _batch(7)
  q, a, r, tq, mask = q[0], a[0], r[0], tq[0], mask[0]
  value_fn = ops.shannon_regularizer().value
  loss = functools.partial(ops.soft_q_loss, value_fn=value_fn)
  with pytest.raises(ValueError, match="Unknown soft-Q loss variant"):
    loss("v4", q, a, r, tq)
  with pytest.raises(AssertionError):
    loss("v2", q[0], a, r, tq)                                  # q_t rank 1
  with pytest.raises(AssertionError):
    loss("v2", q, a, r[None], tq)                               # reward rank 1
  with pytest.raises(AssertionError):
    loss("v2", q, a.astype(np.float32), r, tq)                  # float actions
  with pytest.raises(AssertionError):
    loss("v2", q.astype(np.int32), a, r, tq)                    # int logits
  with pytest.raises(AssertionError):
    loss("v2", q, a, r, tq[:, :-1])                             # target shape
  with pytest.raises(AssertionError):
    loss("v2", q, a[:-1], r, tq)                                # actions length
  with pytest.raises(AssertionError):
    loss("v2", q, a, r, tq, mask_t=mask[:, :-1])                # mask shape
