"""The report's figures (matplotlib, no pyplot state: safe in scripts, tests and notebooks).

Each function takes one task's runs grouped by method ({method: [runs]}) and returns a
`matplotlib.figure.Figure` (None when no run has the data), with one labelled series per method
(curves, scatter) or per timing phase (bars); `series_labels(fig)` lists them.
"""
import numpy as np
from matplotlib.figure import Figure

from hpprompt.report import runs as runs_lib


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
  """Mean over the last `window` values (fewer at the start), same length as `values`."""
  values = np.asarray(values, np.float64)
  if window <= 1:
    return values
  csum = np.concatenate([[0.0], np.cumsum(values)])
  idx = np.arange(1, len(values) + 1)
  lo = np.maximum(0, idx - window)
  return (csum[idx] - csum[lo]) / (idx - lo)


def curves(groups: dict, key_of, ylabel: str, title: str, smooth: int = 1) -> Figure | None:
  """`key_of(run)` vs step, one line per method: mean over seeds, band of ± one standard error."""
  fig = Figure(figsize=(6, 3.6), layout="constrained")
  ax = fig.add_subplot()
  for method, group in groups.items():
    keys = {key_of(r) for r in group} - {None}
    if len(keys) != 1:
      continue
    stats = runs_lib.band(group, keys.pop())
    if stats is None:
      continue
    steps, mean, se = stats
    if steps.tolist() == [0]:   # nothing trained (a manual prompt): a level over the whole plot
      label = f"{method} (n={len(group)})"
      line = ax.axhline(mean[0], ls="--", lw=1.2, label=label)
      if len(group) > 1:
        ax.axhspan(mean[0] - se[0], mean[0] + se[0], color=line.get_color(), alpha=0.15, lw=0)
      continue
    window = max(1, min(smooth, len(steps)))
    mean, se = moving_average(mean, window), moving_average(se, window)
    label = f"{method} (n={len(group)})"
    line, = ax.plot(steps, mean, label=label)
    if len(group) > 1:
      ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.25, lw=0)
  if not ax.lines:
    return None
  ax.set(xlabel="step", ylabel=ylabel, title=title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small")
  return fig


def test_vs_perplexity(groups: dict, metric: str, title: str) -> Figure | None:
  """Test metric of each run's best prompt against its perplexity (log scale), one colour per
  method."""
  fig = Figure(figsize=(5, 3.6), layout="constrained")
  ax = fig.add_subplot()
  for method, group in groups.items():
    points = [(r.perplexity, r.test_metrics[metric]) for r in group
              if r.perplexity is not None and metric in r.test_metrics]
    if points:
      x, y = zip(*points)
      ax.scatter(x, y, label=method)
  if not ax.collections:
    return None
  ax.set(xscale="log", xlabel="prompt perplexity", ylabel=metric, title=title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small")
  return fig


def timing(groups: dict, title: str) -> Figure | None:
  """Median seconds per step of each phase (sample / reward / learn, ...), stacked per method."""
  per_method = {m: runs_lib.mean_timings(group) for m, group in groups.items()}
  per_method = {m: t for m, t in per_method.items() if t}
  if not per_method:
    return None
  phases = list(dict.fromkeys(p for t in per_method.values() for p in t))
  fig = Figure(figsize=(6, 0.6 + 0.5 * len(per_method) + 1.2), layout="constrained")
  ax = fig.add_subplot()
  methods = list(per_method)
  left = np.zeros(len(methods))
  for phase in phases:
    widths = np.asarray([per_method[m].get(phase, 0.0) for m in methods])
    ax.barh(methods, widths, left=left, label=phase)
    left += widths
  ax.set(xlabel="seconds per step (median over steps, mean over seeds)", title=title)
  ax.legend(fontsize="small", ncols=len(phases), loc="lower center", bbox_to_anchor=(0.5, 1.1))
  return fig


def series_labels(fig: Figure) -> list[str]:
  """The labels of the figure's legend entries (one per series)."""
  return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
