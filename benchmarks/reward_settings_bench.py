"""The masked-LM reward (16 prompts x 32 SST-2 inputs) under different settings, each in its own process.

  python benchmarks/reward_settings_bench.py --task_lm=roberta-base --repeats=2

Settings (see SETTINGS): row length of the packed scorer (attention cost grows with it), the padded
path, bfloat16 weights and activations, and XLA CPU flags. Processes run one after the other and the
list is repeated `--rounds` times, so slow drifts of the machine's load hit every setting alike.
Prints the median reward seconds, its ratio to the default, and the max abs logit difference from
the default's logits.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SETTINGS = {   # name -> (extra XLA flags, scorer options)
    "default (packed rows of 128)": ("", {}),
    "packed rows of 64": ("", {"pack_length": 64}),
    "packed rows of 256": ("", {"pack_length": 256}),
    "padded (one row per sequence)": ("", {"pack_length": None}),
    "bfloat16": ("", {"dtype": "bfloat16"}),
    "single-threaded Eigen": ("--xla_cpu_multi_thread_eigen=false", {}),
}


def child(args):
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from hpprompt.models import hub  # noqa: PLC0415
  from hpprompt.tasks import data  # noqa: PLC0415
  from hpprompt.tasks import scoring  # noqa: PLC0415
  opts = json.loads(args.options)
  dtype = jnp.dtype(opts.pop("dtype", "float32"))
  model, tok = hub.load_pretrained(args.task_lm, dtype=dtype)
  rng = np.random.default_rng(0)
  ids = rng.integers(100, 40000, size=(16, 5))
  prompts = [tok.decode(row) for row in ids]
  train = data.load_few_shot("sst-2", 0, "train")
  scorer = scoring.make_scorer(model, tok, "{sentence_1} {prompt} <mask> .",
                               (" terrible", " great"), **opts)
  scorer.class_logits(prompts, train)                   # compile
  times = []
  for _ in range(args.repeats):
    t = time.perf_counter()
    logits = scorer.class_logits(prompts, train)
    times.append(time.perf_counter() - t)
  np.save(args.out, logits.astype(np.float32))
  print(json.dumps({"seconds": statistics.median(times)}))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--task_lm", default="/tmp/hpprompt_paper_models/roberta-base")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--settings", default="", help="comma-separated names (default: all)")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
  parser.add_argument("--out", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return child(args)
  import numpy as np  # noqa: PLC0415
  names = [n for n in SETTINGS if not args.settings or n in args.settings.split(",")]
  tmp = tempfile.mkdtemp()
  times = {n: [] for n in names}
  for _ in range(args.rounds):
    for i, name in enumerate(names):
      flags, opts = SETTINGS[name]
      env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())
      cmd = [sys.executable, __file__, "--child", "--task_lm", args.task_lm, "--repeats",
             str(args.repeats), "--options", json.dumps(opts), "--out", f"{tmp}/{i}.npy"]
      res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
      times[name].append(json.loads(res.stdout.strip().splitlines()[-1])["seconds"])
      print(f"  {name}: {times[name][-1]:.2f} s (load average {os.getloadavg()[0]:.1f})",
            flush=True)
  base = np.load(f"{tmp}/0.npy")
  ref = statistics.median(times[names[0]])
  print(f"\n{args.task_lm}, {os.cpu_count()} CPU cores\n")
  print("| setting | reward (s) | vs default | max abs logit diff vs default |")
  print("| --- | ---: | ---: | ---: |")
  for i, name in enumerate(names):
    t = statistics.median(times[name])
    diff = np.abs(np.load(f"{tmp}/{i}.npy") - base).max()
    print(f"| {name} | {t:.2f} | {ref / t:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
  main()
