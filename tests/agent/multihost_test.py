"""Two processes (2 CPU devices each) through jax.distributed give the single-host results."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from hpprompt.launch import fewshot
from tests.agent import launcher_test

pytestmark = pytest.mark.slow
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multihost_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tiny_gpt2_dir, tmp_path):
  single = fewshot.run(launcher_test._cfg(tiny_gpt2_dir, tmp_path / "single", steps=4))
  port = str(_free_port())
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  procs = [subprocess.Popen([sys.executable, WORKER, port, str(i), tiny_gpt2_dir,
                             str(tmp_path / "multi")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env) for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  results = [json.loads(line[7:]) for out in outs for line in out.splitlines()
             if line.startswith("RESULT ")]
  assert len(results) == 2 and results[0]["best"] == results[1]["best"]
  multi = launcher_test._metrics(tmp_path / "multi")
  ref = launcher_test._metrics(tmp_path / "single")
  assert [r["step"] for r in multi] == [1, 2, 3, 4]
  for a, b in zip(multi, ref):
    for key in ("raw_reward", "loss", "train_acc"):
      if key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
  assert results[0]["best"]["prompt"] == single["best"]["prompt"]
