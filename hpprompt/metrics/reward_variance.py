"""How much of a reward tells prompts apart: variance components of rewards[prompt, source, sample].

The balanced two-way random-effects model with replication (e.g. Montgomery, *Design and Analysis
of Experiments*, §13.3),

  r_kms = mu + P_k + M_m + (PM)_km + e_kms,   k < K prompts, m < M sources, s < S samples,

with the expected mean squares E[MS_P] = s2_e + S s2_pm + M S s2_p, E[MS_M] = s2_e + S s2_pm +
K S s2_m, E[MS_PM] = s2_e + S s2_pm, E[MS_E] = s2_e, solved for the components (ANOVA estimates;
they can come out negative when a component is small, and are reported as they are).

What a training step sees: the style-transfer reward is z-scored within each source (the source
effect M_m drops out) and a prompt meets one source with n samples, so the signal that ranks prompts
is s2_p against the noise s2_pm + s2_e / n of one (prompt, source) pair. With one sample per pair
of a deterministic decoder (greedy) s2_e is 0 by construction and S = 1 is allowed.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class VarianceComponents:
  prompt: float          # s2_p: spread of the prompts' true mean rewards
  source: float          # s2_m
  interaction: float     # s2_pm: a prompt suits some sources more than others
  sample: float          # s2_e: sampling noise of one output (0 for S = 1)
  shape: tuple           # (K, M, S)

  def pair_snr(self, samples: int) -> float:
    """s2_p / (s2_pm + s2_e / samples): signal to noise of one (prompt, source) pair's mean over
    `samples` outputs, the unit a training step compares (negative s2_p counts as 0)."""
    noise = max(self.interaction, 0.0) + max(self.sample, 0.0) / samples
    return max(self.prompt, 0.0) / noise if noise > 0 else float("inf")

  def as_dict(self, samples_per_pair: tuple[int, ...] = (1, 8, 128)) -> dict:
    out = {"sd_prompt": _sd(self.prompt), "sd_source": _sd(self.source),
           "sd_interaction": _sd(self.interaction), "sd_sample": _sd(self.sample),
           "var_prompt": self.prompt, "var_source": self.source,
           "var_interaction": self.interaction, "var_sample": self.sample,
           "shape": list(self.shape)}
    out.update({f"pair_snr_{n}": self.pair_snr(n) for n in samples_per_pair})
    return out


def _sd(v: float) -> float:
  return float(np.sqrt(v)) if v > 0 else 0.0


def variance_components(rewards) -> VarianceComponents:
  """ANOVA estimates of the components of `rewards` [K prompts, M sources, S samples] (K, M >= 2).

  S = 1 is read as deterministic outputs: the interaction mean square is then s2_pm itself.
  """
  r = np.asarray(rewards, np.float64)
  if r.ndim != 3:
    raise ValueError(f"rewards must be [prompts, sources, samples]; got shape {r.shape}.")
  k, m, s = r.shape
  if k < 2 or m < 2:
    raise ValueError(f"need at least 2 prompts and 2 sources; got shape {r.shape}.")
  if not np.all(np.isfinite(r)):
    raise ValueError("rewards hold a non-finite value.")
  cell = r.mean(2)                                   # [K, M]
  grand = cell.mean()
  p_mean, m_mean = cell.mean(1), cell.mean(0)
  ms_p = m * s * np.sum((p_mean - grand) ** 2) / (k - 1)
  ms_m = k * s * np.sum((m_mean - grand) ** 2) / (m - 1)
  inter = cell - p_mean[:, None] - m_mean[None, :] + grand
  ms_pm = s * np.sum(inter ** 2) / ((k - 1) * (m - 1))
  ms_e = np.sum((r - cell[:, :, None]) ** 2) / (k * m * (s - 1)) if s > 1 else 0.0
  return VarianceComponents(
      prompt=float((ms_p - ms_pm) / (m * s)), source=float((ms_m - ms_pm) / (k * s)),
      interaction=float((ms_pm - ms_e) / s), sample=float(ms_e), shape=(k, m, s))


def prompt_means(rewards) -> tuple[np.ndarray, np.ndarray]:
  """Each prompt's mean reward [K] and its standard error [K] over the sources (samples averaged
  within a source first, so the s.e. counts sources, not correlated samples)."""
  cell = np.asarray(rewards, np.float64).mean(2)
  m = cell.shape[1]
  return cell.mean(1), cell.std(1, ddof=1) / np.sqrt(m)


def paired_difference(rewards_a, rewards_b) -> tuple[float, float]:
  """Mean and s.e. over sources of (prompt a - prompt b), both [M, S] on the same sources."""
  d = np.asarray(rewards_a, np.float64).mean(-1) - np.asarray(rewards_b, np.float64).mean(-1)
  return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))
