"""A disk that fills up during a run (a real 2 MiB tmpfs; needs root to mount it, else skipped):
few-shot, soft prompt, style transfer and textual inversion each stop with one line and exit 2
naming the full disk and the last good checkpoint, which stays intact; nothing of Orbax's threads
reaches the terminal. (The same path without a mount: tests/training/save_error_test.py.)"""
import errno
import os
import shutil
import subprocess

import pytest

from hpprompt.launch import cli
from hpprompt.training import checkpoint
from hpprompt.training import lock
from hpprompt.training import run as run_lib

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
  """A 2 MiB tmpfs mounted at tmp_path/disk."""
  path = tmp_path / "disk"
  path.mkdir()
  if shutil.which("mount") is None:
    pytest.skip("no mount command: cannot make a small disk")
  proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    pytest.skip(f"cannot mount a 2 MiB tmpfs ({proc.stderr.strip() or 'needs root'})")
  yield path
  lock.release_all()
  subprocess.run(["umount", "-l", str(path)], check=True)


def _fill(directory) -> None:
  """Writes zeros into directory/filler until the disk is full."""
  with open(os.path.join(directory, "filler"), "wb", buffering=0) as f:
    try:
      while True:
        f.write(b"\0" * 4096)
    except OSError as e:
      assert e.errno == errno.ENOSPC


def _fill_before_second_save(monkeypatch, directory) -> None:
  original, calls = run_lib.Run.save, []

  def save(self, step, trees, extra=None):
    calls.append(step)
    if len(calls) == 2:
      _fill(directory)
    return original(self, step, trees, extra)
  monkeypatch.setattr(run_lib.Run, "save", save)


def _configs(model_dir, data_dir, workdir, tmp_path):
  from hpprompt.launch import fewshot  # noqa: PLC0415
  from hpprompt.launch import soft_prompt  # noqa: PLC0415
  from hpprompt.launch import style_transfer  # noqa: PLC0415
  from hpprompt.launch import textual_inversion  # noqa: PLC0415
  agent = dict(prompt_length=2, prompts_per_step=4, mlp_hidden=16, replay_batch=4,
               replay_capacity=16, filter_top_k=50)
  every = dict(steps=4, eval_every=2, checkpoint_every=1)
  image = os.path.join(textual_inversion.BUNDLED_IMAGES, "rocket.jpg")
  return {
      # its policy head of 2 x 32 x 2048 weights with Adam's moments fills 2 MiB at step 2
      "fewshot": (fewshot.run, fewshot.FewShotConfig(
          task_lm=model_dir, policy_lm=model_dir, data_dir=data_dir, source_token="<s>",
          agent={**agent, "mlp_hidden": 2048}, workdir=workdir, **every)),
      "soft_prompt": (soft_prompt.run, soft_prompt.BaselineConfig(
          task_lm=model_dir, data_dir=data_dir, prompt_length=2, workdir=workdir, **every)),
      "style_transfer": (style_transfer.run, style_transfer.StyleTransferConfig(
          method="pin", task_lm=model_dir, policy_lm=model_dir, source_token="<s>",
          agent={**agent, "prompts_per_step": 2}, content_layer=1, classifier_pool=20,
          dev_limit=1, test_limit=1, num_samples=2, num_bootstraps=2, eval_samples=4,
          cache_dir=str(tmp_path / "cache"), workdir=workdir, **every)),
      "textual_inversion": (textual_inversion.run, textual_inversion.TextualInversionConfig(
          method="pez", clip="tiny", policy_lm=model_dir, image=image, pez={"prompt_length": 2},
          workdir=workdir, **every)),
  }


@pytest.mark.parametrize("launcher", ["fewshot", "soft_prompt", "style_transfer",
                                      "textual_inversion"])
def test_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(
    launcher, small_disk, tiny_gpt2_dir, data_roots, tmp_path, monkeypatch, capfd):
  workdir = str(small_disk / "w")
  fn, cfg = _configs(tiny_gpt2_dir, data_roots["good"], workdir, tmp_path)[launcher]
  if launcher != "fewshot":
    _fill_before_second_save(monkeypatch, small_disk)
  capfd.readouterr()
  with pytest.raises(SystemExit) as e:
    cli.run_main(fn, cfg)
  err = capfd.readouterr().err
  assert e.value.code == 2 and len(err.splitlines()) == 1, err[-3000:]
  assert "no space left on device" in err and "the last good checkpoint is step 1" in err, err
  run_dir = workdir if launcher != "textual_inversion" else os.path.join(
      workdir, sorted(os.listdir(workdir))[0])
  folder = os.path.join(run_dir, "checkpoints")
  assert os.listdir(folder) == ["1"]                   # no unfinished step left taking space
  assert checkpoint.check_manifest(os.path.join(folder, "1")) is None
  assert not os.path.exists(os.path.join(run_dir, lock.LOCK_NAME))
