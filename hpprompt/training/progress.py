"""Progress lines with an ETA for long phases outside the training loop (e.g. test evaluation)."""
import sys
import time


def eta_text(elapsed: float, done: int, total: int) -> str:
  """hh:mm:ss left at the mean rate so far ('?' before anything is done)."""
  if done <= 0:
    return "?"
  return time.strftime("%H:%M:%S", time.gmtime(elapsed / done * max(total - done, 0)))


class ProgressLine:
  """`update(done, total)` prints `label: done/total unit (p%), ETA hh:mm:ss` through `print_fn`
  at most every `min_interval` seconds (and always at the end)."""

  def __init__(self, label: str, print_fn=None, *, unit: str = "examples",
               min_interval: float = 5.0):
    self.label = label
    self.print_fn = print_fn or (lambda m: print(m, file=sys.stderr, flush=True))
    self.unit = unit
    self.min_interval = min_interval
    self._start = time.time()
    self._last = None

  def update(self, done: int, total: int) -> None:
    now = time.time()
    if done < total and self._last is not None and now - self._last < self.min_interval:
      return
    self._last = now
    self.print_fn(f"{self.label}: {done}/{total} {self.unit} ({100 * done / max(total, 1):.0f}%), "
                  f"ETA {eta_text(now - self._start, done, total)}")

  __call__ = update
