"""Clear command-line errors: a bad flag value gives one line naming the flag, and exit code 2."""
import contextlib
import sys

from hpprompt.models.convert.core import ConversionError
from hpprompt.tasks.data import DataError
from hpprompt.tasks.templates import TemplateError
from hpprompt.training.run import Run

USER_ERRORS = (ConversionError, DataError, TemplateError, ValueError, FileNotFoundError,
               ImportError)


class FlagError(Exception):
  def __init__(self, flag: str, message: str):
    super().__init__(f"--{flag}: {message}")
    self.flag = flag


@contextlib.contextmanager
def flag(name: str):
  """Re-raises user errors raised while using flag `name` as a FlagError naming it."""
  try:
    yield
  except FlagError:
    raise
  except USER_ERRORS as e:
    raise FlagError(name, str(e)) from e


def run_main(fn, *args, **kwargs):
  """Calls fn; a FlagError becomes `error: --flag: message` on stderr and exit code 2."""
  try:
    return fn(*args, **kwargs)
  except FlagError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


# Step counts that every training launcher's config has.
RUN_COUNTS = ("steps", "eval_every", "log_every", "checkpoint_every")


def check_positive(cfg, names=RUN_COUNTS) -> None:
  """FlagError naming the first of cfg's integer fields `names` that is < 1."""
  for name in names:
    if getattr(cfg, name) < 1:
      raise FlagError(name, f"must be >= 1, got {getattr(cfg, name)}.")


def open_run(cfg, record: dict) -> Run:
  """The run directory of a training launcher's config (`--workdir`, `--resume`), errors named."""
  with flag("workdir"):
    return Run(cfg.workdir, record, total_steps=cfg.steps, resume=cfg.resume,
               checkpoint_every=cfg.checkpoint_every,
               tensorboard=getattr(cfg, "tensorboard", False))
