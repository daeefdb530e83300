"""sparsemax, sparsemax_threshold, spmax and tsallis_entropy against the NumPy references.

Compilation dominates the run time on CPU, so every check goes through one jitted, vmapped function
per (V, temperature, top_k, dtype), with the batch padded to a fixed number of rows.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import ops
from tests.ops import references as ref

EPS32 = float(np.finfo(np.float32).eps)
ROWS = 16


@functools.partial(jax.jit, static_argnames=("temperature", "top_k"))
def _all_ops(z, mask, temperature, top_k):
  def one(z, m):
    kw = dict(temperature=temperature, top_k=top_k)
    tau, size = ops.sparsemax_threshold(z, m, **kw)
    return ops.sparsemax(z, m, **kw), tau, size, ops.spmax(z, m, **kw)
  return jax.vmap(one)(z, mask)


def run(z, mask=None, *, temperature=1.0, top_k=ops.DEFAULT_TOP_K):
  """(p [n, V], tau [n], size [n], spmax [n]) for logits z [n, V]; rows padded to ROWS per call."""
  z = np.atleast_2d(z)
  mask = np.ones(z.shape, bool) if mask is None else np.atleast_2d(mask)
  outs = []
  for i in range(0, z.shape[0], ROWS):
    zc, mc = z[i:i + ROWS], mask[i:i + ROWS]
    pad = ROWS - zc.shape[0]
    zc = np.concatenate([zc, np.repeat(zc[-1:], pad, 0)])
    mc = np.concatenate([mc, np.repeat(mc[-1:], pad, 0)])
    res = _all_ops(jnp.asarray(zc), jnp.asarray(mc), temperature, top_k)
    outs.append([np.asarray(r)[:ROWS - pad] for r in res])
  return tuple(np.concatenate(parts) for parts in zip(*outs))


def value_tol(v, ulps=4):
  """`ulps` float32 ulps of the value's magnitude (and at least 1e-6)."""
  return max(1e-6, ulps * EPS32 * float(np.max(np.abs(v))))


def prob_tol(z):
  """p = z - tau is a difference of numbers of size |z|: float32 rounding scales with max |z|."""
  return max(1e-6, 4 * EPS32 * float(np.max(np.abs(z[np.isfinite(z)]))))


def check_against_reference(z, mask=None, *, temperature=1.0, top_k=ops.DEFAULT_TOP_K,
                            brute_force=False, check_size=True):
  """Compares each row of float32 z [n, V] with the float64 sort-rule (and brute-force) refs."""
  z = np.atleast_2d(np.asarray(z, np.float32))
  masks = np.ones(z.shape, bool) if mask is None else np.atleast_2d(mask)
  p, tau, size, value = run(z, masks, temperature=temperature, top_k=top_k)
  for i in range(z.shape[0]):
    zi = z[i].astype(np.float64) / temperature
    p_ref, tau_ref, k_ref = ref.sparsemax_sort(zi, masks[i])
    tol = prob_tol(zi)
    np.testing.assert_allclose(p[i], p_ref, atol=tol, rtol=0, err_msg=f"row {i}")
    np.testing.assert_allclose(tau[i], tau_ref, atol=tol, rtol=0, err_msg=f"row {i}")
    if check_size:
      assert size[i] == k_ref, f"row {i}: support {size[i]} != {k_ref}"
    v_ref = temperature * ref.spmax_formula(zi, masks[i])
    # 16 ulps of max(|value|, |z|): room for summation order; test_spmax_is_accurate_* is tighter.
    v_tol = value_tol(np.append(temperature * zi[np.isfinite(zi)], v_ref), ulps=16)
    np.testing.assert_allclose(value[i], v_ref, atol=v_tol, rtol=0, err_msg=f"row {i}")
    assert not np.any(p[i][~masks[i]]), f"row {i}: masked entries got probability"
    if brute_force:
      p_bf, tau_bf, k_bf = ref.sparsemax_bruteforce(zi, masks[i])
      np.testing.assert_allclose(p[i], p_bf, atol=tol, rtol=0)
      assert size[i] == k_bf
  return p, tau, size, value


def random_rows(rng, v, n=8):
  """Rows of several kinds: normal at scales 0.3..3, a 0.5-grid with ties, a shifted row."""
  rows = [rng.normal(size=v) * s for s in (0.3, 1.0, 3.0)]
  rows.append(np.round(rng.normal(size=v) * 2) / 2)                 # ties on a dyadic grid
  rows.append(rng.normal(size=v) + 5.0)
  rows.append(rng.uniform(-0.01, 0.01, size=v))                     # near-uniform: full support
  while len(rows) < n:
    rows.append(rng.normal(size=v) * rng.uniform(0.1, 5))
  return np.stack(rows).astype(np.float32)


# --- the references agree with each other ---------------------------------------------------------


@pytest.mark.parametrize("v", [1, 2, 3, 4, 5, 6, 7, 8])
def test_references_agree(v):
  rng = np.random.default_rng(v)
  for z in list(random_rows(rng, v)) + [np.zeros(v), np.full(v, 7.0)]:
    for mask in (None, rng.random(v) < 0.6):
      if mask is not None and not mask.any():
        continue
      p_s, tau_s, k_s = ref.sparsemax_sort(z, mask)
      p_b, tau_b, k_b = ref.sparsemax_bruteforce(z, mask)
      np.testing.assert_allclose(p_s, p_b, atol=1e-12)
      np.testing.assert_allclose(tau_s, tau_b, atol=1e-12)
      assert k_s == k_b
      np.testing.assert_allclose(p_s.sum(), 1.0, atol=1e-12)


def test_reference_spmax_is_the_simplex_maximum():
  """spmax_formula == objective at sparsemax p == SLSQP maximum >= random points and vertices."""
  rng = np.random.default_rng(0)
  for v in (2, 3, 4, 6):
    for z in random_rows(rng, v, n=6):
      p, _, _ = ref.sparsemax_sort(z)
      value = ref.spmax_formula(z)
      np.testing.assert_allclose(ref.spmax_objective(p, z), value, atol=1e-12)
      best, _ = ref.spmax_scipy(z)
      np.testing.assert_allclose(best, value, atol=1e-7)
      points = np.concatenate([rng.dirichlet(np.ones(v) * 0.3, size=2000), np.eye(v)])
      others = points @ z + 0.5 * (1.0 - np.sum(points * points, -1))
      assert np.all(others <= value + 1e-12)


# --- hand fixtures (methods.md, Sec. 3.2) ---------------------------------------------------------


@jax.jit
def _single(z):
  return ops.sparsemax(z), ops.sparsemax_threshold(z), ops.spmax(z)


@pytest.mark.parametrize("z, size, tau, p, value", [
    ([1.0, 0.8, 0.1, -1.0], 2, 0.4, [0.6, 0.4, 0.0, 0.0], 1.16),
    ([2.0, 1.0, 0.1], 1, 1.0, [1.0, 0.0, 0.0], 2.0),
])
def test_hand_fixtures(z, size, tau, p, value):
  z = jnp.asarray(z, jnp.float32)
  got_p, (got_tau, got_size), got_value = _single(z)       # mask=None path
  np.testing.assert_allclose(got_p, p, atol=1e-6)
  np.testing.assert_allclose(got_tau, tau, atol=1e-6)
  assert int(got_size) == size
  np.testing.assert_allclose(got_value, value, atol=1e-6)
  # The numbers also follow from the references.
  np.testing.assert_allclose(ref.sparsemax_sort(z)[0], p, atol=1e-6)
  np.testing.assert_allclose(ref.spmax_formula(z), value, atol=1e-6)


# --- random inputs of many sizes ------------------------------------------------------------------


@pytest.mark.parametrize("v", [1, 2, 3, 8, 64, 65, 300])
def test_random_inputs_match_references(v):
  rng = np.random.default_rng(100 + v)
  z = random_rows(rng, v, n=ROWS)
  mask = np.ones(z.shape, bool)
  mask[ROWS // 2:] = rng.random((ROWS - ROWS // 2, v)) < 0.7
  mask[np.arange(z.shape[0]), rng.integers(0, v, size=z.shape[0])] = True   # >= 1 unmasked
  p, _, _, value = check_against_reference(z, mask, brute_force=v <= 8)
  chex.assert_shape(p, (ROWS, v))
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
  assert np.all(p >= 0)
  assert np.all(value >= np.where(mask, z, -np.inf).max(-1) - value_tol(value))


def test_vocabulary_size_50272():
  """OPT's vocabulary: LM-like and near-uniform logits (support > top_k), PIN's top-10000 mask."""
  rng = np.random.default_rng(1)
  v = 50272
  z = np.stack([rng.normal(size=v) * 3, rng.normal(size=v) * 1e-3, rng.normal(size=v) * 3,
                rng.normal(size=v) * 0.05]).astype(np.float32)
  mask = np.ones(z.shape, bool)
  keep = np.argsort(-(z[2] + rng.normal(size=v)))[:10_000]           # a frozen-LM top-10000 filter
  mask[2] = False
  mask[2, keep] = True
  _, _, size, _ = check_against_reference(z, mask)
  assert size[1] > 1000 and size[3] > ops.DEFAULT_TOP_K                # the fallback path ran


def test_top_k_is_not_compiled_as_a_full_sort():
  """The top-k certificate is fast only if XLA keeps its TopK op instead of sorting whole rows.

  On XLA:CPU (jax 0.10.2) reading the k-th value of `lax.top_k` as v[k - 1] compiles the top_k as a
  full sort of the row (~40x slower at V = 50k); jnp.min(v) keeps the TopK.
  """
  z = jnp.zeros((ROWS, 300), jnp.float32)
  hlo = _all_ops.lower(z, jnp.ones(z.shape, bool), 1.0, ops.DEFAULT_TOP_K).compile().as_text()
  assert " sort(" not in hlo, "a full sort of the logits was compiled"


# --- ties, masks, extreme scales ------------------------------------------------------------------


TIES = [
    [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],       # z_(3) == tau == 0 exactly: not in the support
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],       # support 1, rest tied at tau
    [0.75, 0.25, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0],  # boundary tie at tau == 0
    [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0],       # all equal
    [0.0] * 8,
    [-2.0] * 8,
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, -4.0],     # tie groups cut by small top_k
    [0.25, 0.25, 0.25, 0.25, 0.25, 0.25, -0.5, -0.5],
]


@pytest.mark.parametrize("top_k", [1, 64])
def test_ties(top_k):
  p, _, size, _ = check_against_reference(np.array(TIES), top_k=top_k, brute_force=True)
  np.testing.assert_allclose(p[3], np.full(8, 1 / 8), atol=1e-7)
  assert list(size[:3]) == [2, 1, 2]


def test_masked_logits_change_nothing():
  rng = np.random.default_rng(2)
  z = random_rows(rng, 65, n=ROWS)
  mask = rng.random(z.shape) < 0.5
  mask[:, 0] = True
  p, tau, size, value = check_against_reference(z, mask)
  for fill in (1e6, -1e6, 3.0):
    z2 = np.where(mask, z, np.float32(fill))
    p2, tau2, size2, value2 = run(z2, mask)
    np.testing.assert_array_equal(p2, p)
    np.testing.assert_array_equal(tau2, tau)
    np.testing.assert_array_equal(size2, size)
    np.testing.assert_array_equal(value2, value)
  assert np.all(size <= mask.sum(-1))


def test_single_unmasked_entry_gets_probability_one():
  z = np.random.default_rng(3).normal(size=(3, 64)).astype(np.float32)
  mask = np.zeros(z.shape, bool)
  mask[[0, 1, 2], [0, 17, 63]] = True
  p, _, size, value = run(z, mask)
  np.testing.assert_array_equal(p, mask.astype(np.float32))
  np.testing.assert_array_equal(size, 1)
  np.testing.assert_allclose(value, z[mask], atol=1e-6)


def test_pin_minus_1000_fill_equals_mask():
  """PIN fills filtered logits with -1000 instead of masking; the value and policy are the same."""
  rng = np.random.default_rng(4)
  z = (rng.normal(size=(ROWS, 300)) * 3).astype(np.float32)
  mask = rng.random(z.shape) < 0.3
  mask[:, 0] = True
  p, _, _, value = run(z, mask)
  p2, _, _, value2 = run(np.where(mask, z, np.float32(-1000.0)))
  np.testing.assert_allclose(p2, p, atol=1e-6)
  np.testing.assert_allclose(value2, value, atol=1e-5)


def test_minus_inf_logits_act_as_masked():
  z = np.array([[1.0, -np.inf, 0.8, 0.1, -np.inf, -1.0, -np.inf, 0.0]], np.float32)
  p, tau, size, value = run(z)
  np.testing.assert_allclose(p[0], [0.6, 0, 0.4, 0, 0, 0, 0, 0], atol=1e-6)
  assert size[0] == 2 and np.isclose(tau[0], 0.4) and np.isclose(value[0], 1.16)


def test_huge_logits():
  """Logits at the 1e4 scale (support usually 1, sometimes a close pair)."""
  rng = np.random.default_rng(5)
  z = (rng.normal(size=(ROWS, 300)) * 1e4).astype(np.float32)
  z[1, 7] = z[1].max() + 0.5                       # close pairs at the top: support 2
  z[2, :2] = z[2].max() + np.array([1.5, 1.25], np.float32)
  _, _, size, _ = check_against_reference(z)
  assert size[1] == size[2] == 2


@pytest.mark.parametrize("top_k", [1, 2, 64, 1000])
def test_tiny_logits_full_support(top_k):
  """1e-4-scale logits: the support is the whole vector, beyond top_k (Michelot fallback)."""
  rng = np.random.default_rng(6)
  z = (rng.normal(size=(ROWS, 300)) * 1e-4).astype(np.float32)
  mask = np.ones(z.shape, bool)
  mask[ROWS // 2:] = rng.random((ROWS // 2, 300)) < 0.5
  _, _, size, _ = check_against_reference(z, mask, top_k=top_k)
  np.testing.assert_array_equal(size, mask.sum(-1))


@pytest.mark.parametrize("top_k", [1, 2, 64, 1000])
def test_top_k_does_not_change_results(top_k):
  rng = np.random.default_rng(7)
  z = random_rows(rng, 300, n=ROWS)
  check_against_reference(z, top_k=top_k)


def test_support_size_one():
  z = np.zeros((2, 8), np.float32)
  z[0] = [5.0, 3.9, 1, 0, 0, 0, 0, 0]            # gap > 1: support 1
  z[1] = [0.0, 0, 0, 0, 0, 0, 0, 1.0000001]     # gap = 1 + 1 ulp: still support 1
  p, tau, size, value = run(z)
  np.testing.assert_array_equal(size, [1, 1])
  np.testing.assert_array_equal(p[0], [1, 0, 0, 0, 0, 0, 0, 0])
  np.testing.assert_allclose(value, z.max(-1), atol=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 2.5])
def test_temperature(temperature):
  rng = np.random.default_rng(8)
  z = random_rows(rng, 65, n=ROWS)
  p, tau, _, value = check_against_reference(z, temperature=temperature)
  # In terms of the public API: sparsemax(z, a) == sparsemax(z / a), spmax(z, a) == a spmax(z / a).
  # XLA may compile z / a as z * (1 / a): compare within float32 rounding of z / a.
  za = z / np.float32(temperature)
  p1, tau1, _, value1 = run(za)
  np.testing.assert_allclose(p, p1, atol=prob_tol(za), rtol=0)
  np.testing.assert_allclose(tau, tau1, atol=prob_tol(za), rtol=0)
  np.testing.assert_allclose(value, temperature * value1, atol=temperature * prob_tol(za), rtol=0)


# --- values ---------------------------------------------------------------------------------------


def test_spmax_bounds_max_with_equality_iff_support_one():
  rng = np.random.default_rng(9)
  z = random_rows(rng, 64, n=ROWS)
  _, _, size, value = run(z)
  zmax = z.max(-1)
  assert np.all(value >= zmax - 1e-6)
  np.testing.assert_allclose(value[size == 1], zmax[size == 1], atol=1e-6)
  assert np.all(value[size > 1] > zmax[size > 1] + 1e-7)
  assert (size == 1).any() and (size > 1).any()


@pytest.mark.parametrize("shift", [30.0, 100.0, 1000.0])
def test_spmax_is_accurate_for_shifted_logits(shift):
  """spmax(z + c) = spmax(z) + c; float32 should be within a few ulps of |spmax|.

  Shows the cancellation in 1/2 sum_S (z^2 - tau^2): the squares are of size c^2.
  """
  rng = np.random.default_rng(10)
  z = np.concatenate([rng.normal(size=(8, 300)) * 3, rng.normal(size=(8, 300)) * 1e-2])
  z = (z + shift).astype(np.float32)
  _, _, _, value = run(z)
  for i in range(z.shape[0]):
    v_ref = ref.spmax_formula(z[i])
    np.testing.assert_allclose(value[i], v_ref, atol=value_tol(v_ref), rtol=0, err_msg=f"row {i}")


def test_spmax_single_row_mask_none_and_dtype():
  z = jnp.asarray(np.random.default_rng(11).normal(size=3), jnp.float32)
  p, (tau, size), v = _single(z)
  chex.assert_shape([v, tau, size, p], [(), (), (), (3,)])
  chex.assert_type([v, tau, size, p], [jnp.float32, jnp.float32, jnp.int32, jnp.float32])
  np.testing.assert_allclose(v, ref.spmax_formula(z), atol=1e-6)
  np.testing.assert_allclose(p, ref.sparsemax(z), atol=1e-6)
  np.testing.assert_allclose(ops.tsallis_entropy(p), ref.tsallis_entropy(p), atol=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_value_equals_inner_product_plus_entropy(temperature):
  """a spmax(z / a) = <p, z> + a W(p) with p = sparsemax(z / a)."""
  rng = np.random.default_rng(12)
  z = random_rows(rng, 65, n=ROWS)
  p, _, _, value = run(z, temperature=temperature)
  entropy = np.asarray(jax.jit(jax.vmap(ops.tsallis_entropy))(p))
  for i in range(ROWS):
    w = entropy[i]
    np.testing.assert_allclose(w, ref.tsallis_entropy(p[i]), atol=1e-6)
    np.testing.assert_allclose(value[i], p[i] @ z[i].astype(np.float64) + temperature * w,
                               atol=1e-5, rtol=1e-6)


# --- dtypes ---------------------------------------------------------------------------------------


def test_bfloat16():
  rng = np.random.default_rng(13)
  z = np.asarray(jnp.asarray(rng.normal(size=(4, 64)) * 2, jnp.bfloat16))
  p, tau, size, value = run(z)
  assert p.dtype == value.dtype == jnp.bfloat16
  assert tau.dtype == np.float32 and size.dtype == np.int32
  z64 = z.astype(np.float64)
  for i in range(4):
    p_ref, tau_ref, k_ref = ref.sparsemax_sort(z64[i])
    np.testing.assert_allclose(p[i].astype(np.float32), p_ref, atol=1e-2)
    np.testing.assert_allclose(tau[i], tau_ref, atol=1e-5)
    np.testing.assert_allclose(value[i].astype(np.float32), ref.spmax(z64[i]), rtol=1e-2)
    assert size[i] == k_ref
