"""One process of the two-process test in multihost_test.py (run as a script)."""
import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

from hpprompt.training import sharding  # noqa: E402

if __name__ == "__main__":
  port, pid, model_dir, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
  sharding.init_distributed(f"127.0.0.1:{port}", 2, pid)
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  from tests.agent import launcher_test  # noqa: E402
  cfg = launcher_test._cfg(model_dir, workdir, steps=4)
  from hpprompt.launch import fewshot  # noqa: E402
  results = fewshot.run(cfg)
  print("RESULT " + json.dumps({"process": pid, "best": results["best"]}), flush=True)
