"""Timing helpers shared by the benchmark scripts (imported from benchmarks/, the scripts' directory)."""
import statistics
import time


def median_seconds(fn, repeats: int) -> float:
  """Median wall time of `repeats` calls of fn, after one untimed call (compilation, caches)."""
  fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)
