"""XLA CPU flags, thread settings and bfloat16 on the rlprompt-base reward, one process per setting.

  python benchmarks/xla_settings_bench.py --task_lm=/tmp/hpprompt_paper_models/roberta-base
  python benchmarks/xla_settings_bench.py --rounds=3 --settings=default,oneDNN --prompts=8

Workload: the reward of `agent_bench.py --paper=rlprompt-base` (roberta-base masked LM, random
weights of the real size from paper_models.py, template `{sentence_1} {prompt} <mask> .`, the 32
SST-2 16-shot inputs x `--prompts` prompts of 5 random tokens, the default packed scorer), timed
after one compiling call. XLA reads XLA_FLAGS once, when jax initialises, so every (setting, round)
runs in a fresh process; the rounds interleave the settings (every other round in reverse order) so
that slow drifts of the machine's load hit all of them alike. Each child also times one jitted
2048^3 matmul (float32; bfloat16 for the bfloat16 setting).

Prints one line per run (seconds, load average), then: setting, median reward s, ratio to the
default (> 1: faster), median matmul GFLOP/s, max abs logit difference from the default, and the
load averages seen. Only flags that this jaxlib parses are listed: an unknown flag in XLA_FLAGS
aborts the process (`--check` runs each setting on a tiny program first and says which parse).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# name -> (extra XLA_FLAGS, extra environment, task-LM dtype)
SETTINGS = {
    "default": ("", {}, "float32"),
    "single-threaded Eigen": ("--xla_cpu_multi_thread_eigen=false", {}, "float32"),
    "2 CPU devices (rows sharded)": ("--xla_force_host_platform_device_count=2", {}, "float32"),
    "2 CPU devices x 1 Eigen thread": (
        "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false", {},
        "float32"),
    "thread pool of 1 (NPROC=1)": ("", {"NPROC": "1"}, "float32"),
    "thread pool of 4 (NPROC=4)": ("", {"NPROC": "4"}, "float32"),
    "fast math": ("--xla_cpu_enable_fast_math=true", {}, "float32"),
    "fast min/max": ("--xla_cpu_enable_fast_min_max=true", {}, "float32"),
    "512-bit vectors": ("--xla_cpu_prefer_vector_width=512", {}, "float32"),
    "oneDNN": ("--xla_cpu_use_onednn=true", {}, "float32"),
    "oneDNN dot fusion": ("--xla_cpu_experimental_onednn_fusion_type=dot", {}, "float32"),
    "XNNPACK dot fusion": ("--xla_cpu_experimental_xnn_fusion_type=dot", {}, "float32"),
    "XNNPACK graph fusion": (
        "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY", {}, "float32"),
    "YNNPACK dot fusion": ("--xla_cpu_experimental_ynn_fusion_type=dot", {}, "float32"),
    "bfloat16 task LM": ("", {}, "bfloat16"),
}
TEMPLATE = "{sentence_1} {prompt} <mask> ."
VERBALIZERS = (" terrible", " great")


def child(args):
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from hpprompt.metrics import flops  # noqa: PLC0415
  from hpprompt.models import hub  # noqa: PLC0415
  from hpprompt.tasks import data  # noqa: PLC0415
  from hpprompt.tasks import scoring  # noqa: PLC0415
  dtype = jnp.dtype(args.dtype)
  model, tok = hub.load_pretrained(args.task_lm, dtype=dtype)
  ids = np.random.default_rng(0).integers(100, 40000, size=(args.prompts, 5))
  prompts = [tok.decode(row) for row in ids]
  train = data.load_few_shot("sst-2", 0, "train")
  scorer = scoring.make_scorer(model, tok, TEMPLATE, VERBALIZERS)
  scorer.class_logits(prompts, train)                   # compile
  t = time.perf_counter()
  logits = scorer.class_logits(prompts, train)
  seconds = time.perf_counter() - t
  np.save(args.out, np.asarray(logits, np.float32))
  print(json.dumps({"seconds": seconds, "matmul": flops.matmul_peak(2048, dtype),
                    "devices": len(jax.devices())}))


def _env(flags: str, extra: dict) -> dict:
  xla_flags = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
  return dict(os.environ, **extra, XLA_FLAGS=xla_flags)


def check(names):
  """Runs each setting's flags on a tiny program: an unknown flag aborts jax (said here)."""
  for name in names:
    flags, extra, _ = SETTINGS[name]
    program = "import jax.numpy as jnp; print(jnp.ones(3).sum())"
    res = subprocess.run([sys.executable, "-c", program], env=_env(flags, extra),
                         capture_output=True, text=True)
    warned = [line for line in res.stderr.splitlines() if "flag" in line.lower()]
    print(f"{name}: {'parses' if res.returncode == 0 else 'REJECTED'} {' '.join(warned)[:200]}")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--task_lm", default="/tmp/hpprompt_paper_models/roberta-base")
  parser.add_argument("--model_dir", default="/tmp/hpprompt_paper_models",
                      help="where paper_models.py builds roberta-base if --task_lm is absent")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--prompts", type=int, default=16)
  parser.add_argument("--settings", default="",
                      help=f"comma-separated names: {', '.join(SETTINGS)}")
  parser.add_argument("--check", action="store_true", help="only check that each setting parses")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
  parser.add_argument("--out", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return child(args)
  names = [n for n in args.settings.split(",") if n] or list(SETTINGS)
  unknown = [n for n in names if n not in SETTINGS]
  if unknown:
    sys.exit(f"error: --settings: unknown {unknown}; known: {list(SETTINGS)}")
  if args.check:
    return check(names)
  if not os.path.exists(os.path.join(args.task_lm, "config.json")):
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, "-c", f"import paper_models; paper_models.build("
                    f"'roberta-base', {args.model_dir!r})"], check=True, cwd=here)
    args.task_lm = os.path.join(args.model_dir, "roberta-base")
  import numpy as np  # noqa: PLC0415
  tmp = tempfile.mkdtemp()
  runs = {n: [] for n in names}
  for r in range(args.rounds):
    for name in (names if r % 2 == 0 else names[::-1]):
      flags, extra, dtype = SETTINGS[name]
      load = os.getloadavg()[0]
      out = os.path.join(tmp, f"{names.index(name)}.npy")
      cmd = [sys.executable, __file__, "--child", "--task_lm", args.task_lm, "--dtype", dtype,
             "--prompts", str(args.prompts), "--out", out]
      res = subprocess.run(cmd, env=_env(flags, extra), capture_output=True, text=True)
      if res.returncode:
        print(f"  {name}: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
        continue
      run = json.loads(res.stdout.strip().splitlines()[-1])
      run["load"] = (load + os.getloadavg()[0]) / 2
      runs[name].append(run)
      print(f"  round {r}, {name}: reward {run['seconds']:.2f} s, matmul "
            f"{run['matmul'] / 1e9:.0f} GFLOP/s, {run['devices']} device(s), load average "
            f"{run['load']:.1f}", flush=True)
  base = np.load(os.path.join(tmp, "0.npy"))
  ref = statistics.median(x["seconds"] for x in runs[names[0]])
  print(f"\n{args.task_lm}, {args.prompts} prompts x 32 inputs, {os.cpu_count()} CPU cores, "
        f"{args.rounds} rounds\n")
  print("| setting | XLA_FLAGS | reward (s, median) | vs default | matmul GFLOP/s | "
        "max abs logit diff | load average (min-max) |")
  print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
  for i, name in enumerate(names):
    if not runs[name]:
      print(f"| {name} | `{SETTINGS[name][0]}` | failed | | | | |")
      continue
    t = statistics.median(x["seconds"] for x in runs[name])
    mm = statistics.median(x["matmul"] for x in runs[name])
    diff = np.abs(np.load(os.path.join(tmp, f"{i}.npy")) - base).max()
    loads = [x["load"] for x in runs[name]]
    print(f"| {name} | `{SETTINGS[name][0] or '-'}` | {t:.2f} | {ref / t:.2f}x | {mm / 1e9:.0f} | "
          f"{diff:.1e} | {min(loads):.1f}-{max(loads):.1f} |")


if __name__ == "__main__":
  main()
