"""Live metrics for standard viewers: TensorBoard event files beside `metrics.jsonl`.

`Run(..., tensorboard=True)` (launchers: `--tensorboard`) writes every logged record through
`TensorBoardWriter`: numbers as scalars, strings (the greedy / sampled prompts) as text. Watch a run
with `tensorboard --logdir runs/`. The writer is tensorboardX's (`pip install tensorboardX`, in the
`report` extra): no TensorFlow needed.
"""
import math


class TensorBoardWriter:
  """Scalars and text of metrics records into `logdir`'s event files.

  The event file is opened at the first record with `purge_step` = its step, so events a resumed
  run logs again replace those of the interrupted run after its last checkpoint.
  """

  def __init__(self, logdir: str):
    try:
      import tensorboardX  # noqa: PLC0415  (optional dependency)
    except ImportError as e:
      raise ImportError("TensorBoard logging needs tensorboardX: pip install tensorboardX "
                        "(or hpprompt[report]).") from e
    self._summary_writer = tensorboardX.SummaryWriter
    self.logdir = logdir
    self.writer = None

  def write(self, step: int, record: dict) -> None:
    if self.writer is None:
      self.writer = self._summary_writer(self.logdir, purge_step=step)
    for key, value in record.items():
      if key == "step":
        continue
      if isinstance(value, bool):
        value = float(value)
      if isinstance(value, (int, float)) and math.isfinite(value):
        self.writer.add_scalar(key, value, step)
      elif isinstance(value, str):
        self.writer.add_text(key, value, step)
    self.writer.flush()

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
      self.writer = None
