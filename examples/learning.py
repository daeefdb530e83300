"""Did a run learn? Mean training reward of the first vs the last 20% of steps, with 95% intervals.

  python examples/learning.py examples/exclamation        # any run directory (metrics.jsonl)

Two intervals for the change (last - first): a percentile bootstrap that resamples the steps of
each window (each step's reward is the mean over its prompts and outputs), and the ordinary
least-squares slope of the per-step reward on the step over the whole run (t interval), times the
distance between the windows' centres.
"""
import sys

from hpprompt.report.trend import first_last
from hpprompt.report.trend import slope
from hpprompt.report.trend import step_rewards


def main(workdir: str) -> None:
  rewards = step_rewards(workdir)
  fl, sl = first_last(rewards), slope(rewards)
  gap = len(rewards) - fl["steps_per_window"]          # steps between the windows' centres
  print(f"{len(rewards)} steps; mean reward first {fl['steps_per_window']} steps "
        f"{fl['first']:.3f}, last {fl['steps_per_window']} {fl['last']:.3f}: change "
        f"{fl['difference']:+.3f}, bootstrap 95% [{fl['bootstrap_95'][0]:+.3f}, "
        f"{fl['bootstrap_95'][1]:+.3f}]; OLS slope {sl['slope']:+.4f}/step, 95% "
        f"[{sl['slope_95'][0]:+.4f}, {sl['slope_95'][1]:+.4f}] (x {gap} steps: "
        f"{sl['slope'] * gap:+.3f} [{sl['slope_95'][0] * gap:+.3f}, "
        f"{sl['slope_95'][1] * gap:+.3f}])")


if __name__ == "__main__":
  main(sys.argv[1])
