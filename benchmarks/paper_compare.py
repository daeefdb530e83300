"""`agent_bench.py --paper`: hpprompt's training step vs the official step, one run, one machine.

Each row (one process) times, on this machine and in this run: the matmul peak (one jitted 2048^3
float32 matmul, at the row's start and end), hpprompt's steps (one warm-up step, then `--steps`),
then the official step re-built with torch/transformers (`official_step.py`, its own process: one
warm-up step, then `--steps`), and prints both side by side with their ratio, each side's reward
FLOPs and FLOP/s against the measured peak, and each side's peak memory. Optionally
(`--reward_repeats`) the same prompts' rewards interleaved: hpprompt packed and padded, the official
reward, and a PyTorch reward with the MLM head at <mask> only in chunks of 256 (a lower bar than the
official code, kept for comparison). Seconds are this machine's only (printed with it).
"""
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import get_preset
from hpprompt.metrics import flops
from hpprompt.models import hub
from hpprompt.tasks import data, scoring
from hpprompt.tasks.classification import ClassificationTask

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = {   # name -> (preset, policy, task LM)
    "rlprompt-base": ("rlprompt", "distilgpt2", "roberta-base"),
    "pin-base": ("pin", "opt-125m", "roberta-base"),
    "rlprompt-large": ("rlprompt", "distilgpt2", "roberta-large"),
    "pin-large": ("pin", "opt-125m", "roberta-large"),
}
MLM_TEMPLATE = "{sentence_1} {prompt} <mask> ."
VERBALIZERS = (" terrible", " great")


def machine() -> str:
  """CPU model, logical / physical cores and memory of this machine (from /proc)."""
  info = open("/proc/cpuinfo").read().split("\n\n")
  model = next((ln.split(":", 1)[1].strip() for ln in info[0].splitlines()
                if ln.startswith("model name")), platform.processor() or "unknown CPU")
  cores = {tuple(ln.split(":")[1].strip() for ln in block.splitlines()
                 if ln.startswith(("physical id", "core id"))) for block in info if block.strip()}
  mem = next(ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
  return (f"{model}, {os.cpu_count()} logical CPUs ({len(cores)} physical cores), "
          f"{int(mem) / 2 ** 20:.1f} GiB RAM, {platform.machine()}")


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def model_dirs(name: str, args) -> tuple[str, str, str]:
  """(preset, policy dir, task LM dir); random paper-size models are built in child processes."""
  preset, policy_name, task_name = ROWS.get(name, (name, None, None))
  dirs = []
  for model, given in ((policy_name, args.policy), (task_name, args.task_lm)):
    if not given:                           # built in a child process: no torch in our memory
      code = (f"import paper_models; print(paper_models.build({model!r}, {args.model_dir!r}, "
              f"tiny={args.tiny}))")
      given = subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE, text=True,
                             stdout=subprocess.PIPE).stdout.split()[-1]
    dirs.append(given)
  return preset, *dirs


def hpprompt_steps(preset, policy_dir, task_dir, args):
  """hpprompt's side: medians of `args.steps` steps after one warm-up step (every prompt scored)."""
  policy, policy_tok = hub.load_pretrained(policy_dir)
  task_lm, task_tok = hub.load_pretrained(task_dir)
  train = data.load_few_shot("sst-2", 0, "train")
  scorer = scoring.make_scorer(task_lm, task_tok, MLM_TEMPLATE, VERBALIZERS,
                               pack_length=args.pack_length)
  task = ClassificationTask(scorer, train, train)
  cfg = get_preset(preset)
  if cfg.filter_top_k and cfg.filter_top_k > policy_tok.vocab_size // 2:   # tiny vocabularies
    cfg = dataclasses.replace(cfg, filter_top_k=policy_tok.vocab_size // 2)
  agent = PromptAgent(policy, policy_tok, cfg)
  state = agent.init(0)
  if agent.cfg.replay:        # PIN learns once the buffer holds a replay batch: fill it first
    state, rollout = agent.sample(state)
    raw, metrics = task.step_rewards(agent.decode(rollout.tokens), 0).raw, {}
    while "loss" not in metrics:
      state, metrics = agent.learn(state, rollout, raw)
  parts = {k: [] for k in ("sample", "reward", "learn", "executed", "useful")}
  for i in range(args.steps + 1):                       # step 0: compilation
    task.reward_memo.clear()
    slots = scorer.slots
    t0 = time.perf_counter()
    state, rollout = agent.sample(state)
    jax.block_until_ready(rollout.tokens)
    prompts = agent.decode(rollout.tokens)
    t1 = time.perf_counter()
    rewards = task.step_rewards(prompts, i)
    t2 = time.perf_counter()
    state, metrics = agent.learn(state, rollout, rewards.raw)
    jax.block_until_ready(state.train.params)
    times = (t1 - t0, t2 - t1, time.perf_counter() - t2)
    if agent.cfg.replay and "loss" not in metrics:
      raise RuntimeError("PIN's learner did not update on a full replay buffer")
    print(f"  hpprompt step {i}: sample {times[0]:.2f} s, reward {times[1]:.2f} s, "
          f"learn {times[2]:.2f} s", flush=True)
    # Executed reward FLOPs: packed rows of width W score all W^2 pairs, the head runs at each slot.
    width = max(w for _, w in scorer.shapes)
    new = scorer.slots - slots
    executed = scorer.flop_counter(new, new * width, new)
    if i >= 1:
      for key, value in zip(parts, times + (executed, rewards.metrics["reward_flops"])):
        parts[key].append(value)
  med = {k: statistics.median(v) for k, v in parts.items()}
  return dict(med=med, memory=_peak_rss_gib()), (task_lm, task_tok, scorer, prompts, train)


def official_steps(preset, policy_dir, task_dir, counter, hidden, vocab, args):
  """The official step (`official_step.py`) in its own process: medians of `args.steps` steps."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "official.json")
    subprocess.run([sys.executable, os.path.join(HERE, "official_step.py"), f"--row={preset}",
                    f"--policy={policy_dir}", f"--task_lm={task_dir}", f"--steps={args.steps}",
                    f"--out={out}"], check=True)
    result = json.load(open(out))
  med = {k: statistics.median(t[i] for t in result["times"])
         for i, k in enumerate(("sample", "reward", "learn"))}
  head = 2 * hidden * hidden + 2 * hidden * vocab          # dense + decoder at every position
  med["executed"] = sum(counter(len(real) * width, len(real) * width ** 2, 0)
                        + head * len(real) * width for width, real in result["batches"])
  med["useful"] = sum(counter.sequences(real, causal=False) for _, real in result["batches"])
  return dict(med=med, memory=result["rss_gib"], threads=result["threads"],
              versions=f"torch {result['torch']}, transformers {result['transformers']}")


def reward_comparison(hp_state, task_dir, repeats):
  """The same prompts' rewards interleaved `repeats` times: median seconds and max |logit diff|."""
  import official_step  # noqa: PLC0415  (torch: imported after hpprompt's memory was read)
  import paper_models  # noqa: PLC0415
  task_lm, task_tok, scorer, prompts, train = hp_state
  padded = scoring.make_scorer(task_lm, task_tok, MLM_TEMPLATE, VERBALIZERS, pack_length=None)
  texts = [scorer.template.render(e.text, p, mask_token="<mask>") for e in train for p in prompts]
  mask_only = paper_models.TorchReward(task_dir, VERBALIZERS)
  official = official_step.OfficialReward(task_dir)
  sources = [e.text for e in train]
  fns = {
      "hpprompt packed": lambda: scorer.class_logits(prompts, train),
      "hpprompt padded": lambda: padded.class_logits(prompts, train),
      "official (batch 32 per prompt, full head)": lambda: np.stack(
          [official.class_logits(sources, p).numpy() for p in prompts], 1),
      "torch, mask-only head, batches of 256": lambda: mask_only.class_logits(texts).reshape(
          len(train), len(prompts), -1),
  }
  padded.class_logits(prompts, train)                   # compile
  times, out = {k: [] for k in fns}, {}
  for _ in range(repeats):
    for key, fn in fns.items():
      t = time.perf_counter()
      out[key] = fn()
      times[key].append(time.perf_counter() - t)
  return {k: (statistics.median(v), float(np.abs(out[k] - out["hpprompt packed"]).max()))
          for k, v in times.items()}


def run_row(name: str, args) -> dict:
  preset, policy_dir, task_dir = model_dirs(name, args)
  peak = flops.matmul_peak(2048)
  print(f"{name}: matmul peak at the start {peak / 1e9:.1f} GFLOP/s; load average "
        f"{os.getloadavg()[0]:.1f}", flush=True)
  hp, hp_state = hpprompt_steps(preset, policy_dir, task_dir, args)
  cfg = json.load(open(os.path.join(task_dir, "config.json")))
  ref = official_steps(preset, policy_dir, task_dir, hp_state[2].flop_counter, cfg["hidden_size"],
                       cfg["vocab_size"], args)
  rewards = reward_comparison(hp_state, task_dir, args.reward_repeats) if args.reward_repeats \
      else None
  peak_end = flops.matmul_peak(2048)
  return dict(name=name, hp=hp, ref=ref, peak=peak, peak_end=peak_end, rewards=rewards,
              load=os.getloadavg()[0])


def print_rows(rows: list[dict]):
  """One table: both sides of every row, the ratio, FLOPs and FLOP/s against this run's peak."""
  print("\n| row | side | sample (s) | reward (s) | learn (s) | step (s) | official / hpprompt "
        "| reward TFLOP executed | executed GFLOP/s | % of matmul peak | useful GFLOP/s (real "
        "tokens) | matmul peak, start / end (GFLOP/s) | peak memory (GiB) |")
  print("| --- | --- |" + " ---: |" * 11)
  for r in rows:
    steps = {}
    for side, key in (("hpprompt", "hp"), ("official step, torch rebuild", "ref")):
      m = r[key]["med"]
      steps[key] = m["sample"] + m["reward"] + m["learn"]
      ratio = f"**{steps['ref'] / steps['hp']:.2f}x**" if key == "ref" else ""
      rate = m["executed"] / m["reward"]
      print(f"| {r['name']} | {side} | {m['sample']:.2f} | {m['reward']:.2f} | {m['learn']:.2f} | "
            f"{steps[key]:.2f} | {ratio} | {m['executed'] / 1e12:.3g} | {rate / 1e9:.3g} | "
            f"{100 * rate / r['peak']:.0f}% | {m['useful'] / m['reward'] / 1e9:.3g} | "
            f"{r['peak'] / 1e9:.0f} / {r['peak_end'] / 1e9:.0f} | {r[key]['memory']:.2f} |")
  for r in rows:
    print(f"{r['name']}: official code's torch threads {r['ref']['threads']}, "
          f"{r['ref']['versions']}; load average at the end {r['load']:.1f}")
    for key, (seconds, diff) in (r["rewards"] or {}).items():
      print(f"  reward interleaved, {key}: {seconds:.2f} s "
            f"({seconds / r['rewards']['hpprompt packed'][0]:.2f}x packed), "
            f"max |logit diff| vs packed {diff:.1e}")


def main(args):
  """Every row in its own process (clean peak memory per row), then one table."""
  names = [n for n in args.paper.split(",") if n]
  if len(names) == 1 and args.row_out:
    with open(args.row_out, "w") as f:
      json.dump(run_row(names[0], args), f)
    return
  print(f"machine: {machine()}; jax {jax.__version__} ({jax.devices()[0].platform}); "
        f"{args.steps} timed steps per side after one warm-up step", flush=True)
  rows = []
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as tmp:
    for name in names:
      out = os.path.join(tmp, f"{name}.json")
      argv = [a for a in sys.argv[1:] if not a.startswith(("--paper", "--row_out"))]
      argv += [f"--paper={name}", f"--row_out={out}"]
      subprocess.run([sys.executable, sys.argv[0], *argv], check=True)
      rows.append(json.load(open(out)))
      print(f"{name} done after {time.perf_counter() - start:.0f} s in all", flush=True)
  print_rows(rows)

