"""Variance components of rewards[prompt, source, sample] against loops and simulation."""
import numpy as np
import pytest

from hpprompt.metrics import reward_variance as rv


def _loop_mean_squares(r):
  """The four mean squares by explicit loops over the textbook sums (an independent reference)."""
  k, m, s = r.shape
  grand = sum(r[i, j, t] for i in range(k) for j in range(m) for t in range(s)) / (k * m * s)
  pk = [sum(r[i, j, t] for j in range(m) for t in range(s)) / (m * s) for i in range(k)]
  mm = [sum(r[i, j, t] for i in range(k) for t in range(s)) / (k * s) for j in range(m)]
  cell = [[sum(r[i, j, t] for t in range(s)) / s for j in range(m)] for i in range(k)]
  ss_p = m * s * sum((x - grand) ** 2 for x in pk)
  ss_m = k * s * sum((x - grand) ** 2 for x in mm)
  ss_pm = s * sum((cell[i][j] - pk[i] - mm[j] + grand) ** 2 for i in range(k) for j in range(m))
  ss_e = sum((r[i, j, t] - cell[i][j]) ** 2 for i in range(k) for j in range(m) for t in range(s))
  return (ss_p / (k - 1), ss_m / (m - 1), ss_pm / ((k - 1) * (m - 1)),
          ss_e / (k * m * (s - 1)) if s > 1 else 0.0)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 2, 2), (5, 3, 1)])
def test_components_solve_expected_mean_squares(shape):
  r = np.random.default_rng(0).normal(size=shape) * 3 + 1
  ms_p, ms_m, ms_pm, ms_e = _loop_mean_squares(r)
  c = rv.variance_components(r)
  k, m, s = shape
  np.testing.assert_allclose(c.sample, ms_e, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(ms_e + s * c.interaction, ms_pm, rtol=1e-10)
  np.testing.assert_allclose(ms_e + s * c.interaction + m * s * c.prompt, ms_p, rtol=1e-10)
  np.testing.assert_allclose(ms_e + s * c.interaction + k * s * c.source, ms_m, rtol=1e-10)
  assert c.shape == shape


def test_hand_fixture():
  # Two prompts x two sources x two samples; prompt 1 is 2 higher everywhere, no interaction.
  r = np.array([[[0., 2.], [4., 6.]], [[2., 4.], [6., 8.]]])
  c = rv.variance_components(r)
  # Cell means [[1, 5], [3, 7]]: MS_P = 4 * 2 = 8 -> s2_p = (8 - 0) / 4 = 2; MS_E = 2;
  # MS_PM = 0 -> s2_pm = -1 (a negative ANOVA estimate, reported as is); MS_M = 4 * 8 = 32.
  assert c.prompt == pytest.approx(2.0)
  assert c.sample == pytest.approx(2.0)
  assert c.interaction == pytest.approx(-1.0)
  assert c.source == pytest.approx(8.0)
  assert c.pair_snr(2) == pytest.approx(2.0 / (0 + 2.0 / 2))


def test_recovers_simulated_components():
  rng = np.random.default_rng(1)
  k, m, s = 60, 60, 12
  sd = {"prompt": 2.0, "source": 5.0, "interaction": 3.0, "sample": 7.0}
  r = (rng.normal(size=(k, 1, 1)) * sd["prompt"] + rng.normal(size=(1, m, 1)) * sd["source"]
       + rng.normal(size=(k, m, 1)) * sd["interaction"] + rng.normal(size=(k, m, s)) * sd["sample"])
  c = rv.variance_components(r)
  assert c.sample == pytest.approx(49.0, rel=0.03)
  assert c.interaction == pytest.approx(9.0, rel=0.15)
  assert c.prompt == pytest.approx(4.0, rel=0.4)      # 60 prompts: a 60-draw variance estimate
  assert c.source == pytest.approx(25.0, rel=0.4)
  d = c.as_dict()
  assert d["pair_snr_8"] == pytest.approx(c.prompt / (c.interaction + c.sample / 8))


def test_prompt_means_and_paired_difference():
  rng = np.random.default_rng(2)
  r = rng.normal(size=(3, 6, 4))
  mean, se = rv.prompt_means(r)
  cell = r.mean(2)
  np.testing.assert_allclose(mean, [np.mean(row) for row in cell])
  np.testing.assert_allclose(se, [np.std(row, ddof=1) / np.sqrt(6) for row in cell])
  d, d_se = rv.paired_difference(r[1], r[0])
  diffs = cell[1] - cell[0]
  assert d == pytest.approx(diffs.mean())
  assert d_se == pytest.approx(diffs.std(ddof=1) / np.sqrt(6))


@pytest.mark.parametrize("bad, match", [(np.zeros((2, 2)), "prompts, sources, samples"),
                                        (np.zeros((1, 3, 2)), "at least 2"),
                                        (np.full((2, 2, 2), np.nan), "non-finite")])
def test_rejects_bad_input(bad, match):
  with pytest.raises(ValueError, match=match):
    rv.variance_components(bad)
