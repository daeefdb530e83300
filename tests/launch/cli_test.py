"""The error boundary (`cli.run_main`): one line per error, exit codes, --debug; in real processes
for what only a process shows (undecodable command-line bytes, absl's own start-up)."""
import errno
import os
import subprocess
import sys

import pytest

from hpprompt.launch import cli
from hpprompt.models import hub
from hpprompt.models.convert.core import ConversionError
from hpprompt.training.run import Interrupted
from hpprompt.training.run import NonFiniteError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _raise(e):
  raise e


@pytest.mark.parametrize("error,code,text", [
    (cli.FlagError("steps", "must be >= 1, got 0."), 2, "error: --steps: must be >= 1, got 0."),
    (OSError(errno.EROFS, "Read-only file system", "/ro/run"), 2,
     "error: Read-only file system: /ro/run; check the path"),
    (PermissionError(errno.EACCES, "Permission denied", "/x"), 2, "error: Permission denied: /x"),
    (ConversionError("m/config.json: invalid JSON\n(line 1)"), 2,
     "error: m/config.json: invalid JSON (line 1)"),
    (NonFiniteError("training stopped at step 3: non-finite loss"), 2, "step 3: non-finite loss"),
    (RuntimeError("boom"), 1, "error: internal error RuntimeError: boom (rerun with --debug"),
])
def test_every_error_is_one_line(capsys, monkeypatch, error, code, text):
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  with pytest.raises(SystemExit) as e:
    cli.run_main(_raise, error)
  err = capsys.readouterr().err
  assert e.value.code == code and len(err.splitlines()) == 1 and text in err, err


def test_interrupted_exits_130_and_debug_shows_the_exception(monkeypatch):
  with pytest.raises(SystemExit) as e:
    cli.run_main(_raise, Interrupted(4))
  assert e.value.code == 130
  monkeypatch.setenv(cli.DEBUG_ENV, "1")
  with pytest.raises(RuntimeError, match="boom"):
    cli.run_main(_raise, RuntimeError("boom"))
  assert cli.run_main(lambda x: x + 1, 1) == 2


def test_local_paths_are_not_hub_names(tmp_path, monkeypatch):
  for name in ("/nonexistent/model", "./model", "../model", "~/model", "a/b/c", "model/"):
    assert hub.looks_local(name), name
    with pytest.raises(ConversionError, match="no such directory"):
      hub.resolve(name)
  assert not hub.looks_local("gpt2") and not hub.looks_local("facebook/opt-125m")
  monkeypatch.chdir(tmp_path)
  (tmp_path / "runs").mkdir()
  assert hub.looks_local("runs/model")      # its first component is a local folder


@pytest.mark.slow
def test_real_process_undecodable_prompt_and_debug(tiny_gpt2_dir, data_roots):
  script = os.path.join(REPO, "experiments", "evaluate_prompt.py")
  args = [f"--task_lm={tiny_gpt2_dir}", f"--data_dir={data_roots['good']}", "--split=dev"]
  proc = subprocess.run([os.fsencode(sys.executable), os.fsencode(script),
                         b"--prompt=na\xefve"] + [os.fsencode(a) for a in args],
                        capture_output=True, timeout=300, cwd=REPO)
  err = proc.stderr.decode("utf-8", "replace")
  assert proc.returncode == 2 and err.splitlines() == [
      "error: --prompt: prompt 1 is not valid UTF-8 text."], err
  proc = subprocess.run([sys.executable, script, "--prompt=a", "--task_lm=/nonexistent/m",
                         "--debug"], capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 1 and "Traceback" in proc.stderr
  assert "ConversionError: /nonexistent/m: no such directory" in proc.stderr
