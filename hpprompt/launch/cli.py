"""The one error boundary of every launcher: a user error is one line `error: ...` and exit code 2.

`run_main(fn, *args)` calls fn and turns every error a user can cause (flags, files, models, data,
disk, context length, a run that went non-finite) into one line on stderr and exit 2; Ctrl-C after
the run saved exits 130; any other exception is one line too (exit 1). Whatever ends the launcher,
the run directories it held (`run.lock`, taken by `check_run_dir` / `hold_dir`) are released.
`--debug` (a flag every launcher that imports this module gets) or HPPROMPT_DEBUG=1 shows the full
traceback instead. `parse_flags` (pass it as `app.run(main, flags_parser=cli.parse_flags)`) does
the same for flag syntax errors (`--steps=abc`, unknown flags).
"""
import contextlib
import json
import os
import sys

from absl import flags as absl_flags

from hpprompt.models.convert.core import ConversionError
from hpprompt.tasks.data import DataError
from hpprompt.tasks.templates import TemplateError
from hpprompt.training import lock as lock_lib
from hpprompt.training.checkpoint import CheckpointError
from hpprompt.training.run import Interrupted
from hpprompt.training.run import NonFiniteError
from hpprompt.training.run import Run
from hpprompt.training.run import RunError
from hpprompt.training.run import check_workdir
from hpprompt.training.sharding import is_main_process
from hpprompt.training.writers import check_no_file_links

USER_ERRORS = (ConversionError, DataError, TemplateError, CheckpointError, ValueError,
               FileNotFoundError, ImportError, OSError, UnicodeError)

DEBUG_ENV = "HPPROMPT_DEBUG"
try:
  absl_flags.DEFINE_bool("debug", False, "Show the full traceback of an error (also: "
                         f"{DEBUG_ENV}=1).")
except absl_flags.DuplicateFlagError:
  pass


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
  except USER_ERRORS as e:   # an error that names its own flag (`e.flag`) keeps it
    raise FlagError(getattr(e, "flag", None) or name, one_line(e)) from e


def debug() -> bool:
  if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
    return True
  try:
    return bool(absl_flags.FLAGS["debug"].value)
  except (KeyError, absl_flags.Error):
    return False


def one_line(e: BaseException) -> str:
  """The exception's message on one line (OS errors: 'what: file')."""
  if isinstance(e, OSError) and e.strerror:
    text = f"{e.strerror}: {e.filename}" if e.filename else e.strerror
  elif isinstance(e, json.JSONDecodeError):
    text = f"invalid JSON ({e.msg} at line {e.lineno} column {e.colno})"
  else:
    text = str(e) or type(e).__name__
  return " ".join(text.split())


def error_line(e: BaseException) -> tuple[str, int]:
  """(message, exit code) of an exception that reached the boundary."""
  if isinstance(e, FlagError):
    return f"error: {one_line(e)}", 2
  if isinstance(e, NonFiniteError):
    return f"error: {one_line(e)}", 2
  if isinstance(e, OSError):
    return f"error: {one_line(e)}; check the path and its permissions and free space.", 2
  if isinstance(e, USER_ERRORS):
    return f"error: {one_line(e)}", 2
  return (f"error: internal error {type(e).__name__}: {one_line(e)} (rerun with --debug for the "
          "traceback and report it).", 1)


def run_main(fn, *args, **kwargs):
  """Calls fn; every error becomes one line `error: ...` on stderr (exit 2 for user errors)."""
  try:
    return fn(*args, **kwargs)
  except Interrupted:
    sys.exit(130)
  except (SystemExit, KeyboardInterrupt):
    raise
  except Exception as e:  # noqa: BLE001  (the boundary: one line unless --debug)
    if debug():
      raise
    message, code = error_line(e)
    _print_error(message)
    sys.exit(code)
  finally:
    lock_lib.release_all()


def _print_error(message: str) -> None:
  # Text from the command line may hold undecodable bytes (surrogate escapes): show them escaped.
  print(message.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr, flush=True)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with the boundary's format: `error: --flag: ...`, exit 2."""
  try:
    return absl_flags.FLAGS(argv)
  except absl_flags.Error as e:
    _print_error(f"error: {one_line(e)} (see --helpfull)")
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
  try:
    with flag("workdir"):
      return Run(cfg.workdir, record, total_steps=cfg.steps, resume=cfg.resume,
                 checkpoint_every=cfg.checkpoint_every,
                 tensorboard=getattr(cfg, "tensorboard", False))
  except FlagError as e:
    if isinstance(e.__cause__, RunError):
      raise FlagError(e.__cause__.flag, one_line(e.__cause__)) from e.__cause__
    raise


def check_run_dir(cfg) -> None:
  """The run directory checks of `open_run` and the run's name in reports, done before any
  expensive work."""
  label = getattr(cfg, "label", None)
  if label is not None and (not label.strip() or any(c in label for c in "|`\n\r")):
    raise FlagError("label", f"must be a non-empty single line without '|' or '`' (it names the "
                    f"run in the report's markdown tables), got {label!r}.")
  try:
    check_workdir(cfg.workdir, cfg.resume, cfg.steps, lock=is_main_process())
  except RunError as e:
    raise FlagError(e.flag, one_line(e)) from e


def hold_dir(path: str, flag_name: str) -> None:
  """Holds an output directory that is not itself a run (the results grid's --out, textual
  inversion's top --workdir) for this process, as `check_run_dir` does a run's: FlagError naming
  the process that holds it, or a symbolic link to a file in it."""
  if not is_main_process():
    return
  with flag(flag_name):
    held = lock_lib.acquire(path)
    if held.took_over:
      print(f"note: {path} was locked by {lock_lib.describe(held.took_over)}, which is no longer "
            "running; taking it over.", flush=True)
    try:
      check_no_file_links(path)
    except ValueError:
      lock_lib.release(path)
      raise
