"""Writing run files safely, and live metrics for standard viewers (TensorBoard event files).

Every file a run, a launcher or the report writes goes through `write_file` (whole files: written
beside the target, then renamed over it, so a symbolic link planted at the target is replaced, never
followed) or `append_line` (metrics.jsonl: refuses a symbolic link, naming the file);
`check_no_file_links` refuses a run directory holding a link to a file before anything is written.

`Run(..., tensorboard=True)` (launchers: `--tensorboard`) writes every logged record through
`TensorBoardWriter`: numbers as scalars, strings (the greedy / sampled prompts) as text. Watch a run
with `tensorboard --logdir runs/`. The writer is tensorboardX's (`pip install tensorboardX`, in the
`report` extra): no TensorFlow needed.
"""
import errno
import math
import os
import secrets


class LinkError(ValueError):
  """A symbolic link where a run writes a file (writing would change the file it points to)."""

  def __init__(self, path: str):
    target = os.readlink(path) if os.path.islink(path) else "?"
    super().__init__(f"{path} is a symbolic link (to {target}); a run writes its files itself: "
                     "remove the link or choose another --workdir.")


def write_file(path, data: str | bytes, *, sync: bool = False) -> None:
  """Writes `data` (str: UTF-8) into `path` whole: into a new file beside it (never a link), then
  renamed over `path`; a symbolic link at `path` is replaced, its target left as it was."""
  path = os.fspath(path)
  tmp = os.path.join(os.path.dirname(path) or ".",
                     f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data.encode("utf-8") if isinstance(data, str) else data)
      if sync:
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise


def append_line(path, line: str) -> None:
  """Appends `line` and a newline to `path` (created if missing); LinkError if it is a link."""
  path = os.fspath(path)
  try:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise LinkError(path) from e
    raise
  with os.fdopen(fd, "a", encoding="utf-8") as f:
    f.write(line + "\n")


def check_no_file_links(directory: str) -> None:
  """LinkError naming the first symbolic link in `directory` that does not point to a directory
  (a link to a file, or to nothing); links to directories (checkpoints on another disk) pass."""
  if not os.path.isdir(directory):
    return
  for entry in sorted(os.scandir(directory), key=lambda e: e.name):
    if entry.is_symlink() and not os.path.isdir(entry.path):
      raise LinkError(entry.path)


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
