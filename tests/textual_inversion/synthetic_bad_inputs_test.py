"""The synthetic-CLIP and recovery launchers: a wrong flag ends in one line naming it, exit 2."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("script, args, flag", [
    ("train_synthetic_clip.py", ["--steps=0"], "steps"),
    ("train_synthetic_clip.py", ["--train_images=-1"], "train_images"),
    ("train_synthetic_clip.py", ["--steps=abc"], "steps"),
    ("ti_recovery.py", ["--targets=0"], "targets"),
    ("ti_recovery.py", ["--clip=/nonexistent/clip"], "clip"),
])
def test_bad_flag_is_one_line_exit_2(tmp_path, script, args, flag):
  out = ["--out=" + str(tmp_path / "out")]
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script)] + out + args,
                     capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert p.returncode == 2, p.stderr
  lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1 and f"--{flag}" in lines[0] and "Traceback" not in p.stderr, p.stderr
