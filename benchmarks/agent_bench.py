"""Where an agent training step spends its time, and how it scales with input length and prompts.

  python benchmarks/agent_bench.py                    # real SmolLM2-135M as policy and task LM
  python benchmarks/agent_bench.py --lm=/path/to/hf_dir --steps=5
  python benchmarks/agent_bench.py --paper=rlprompt-base,pin-base   # the papers' models (below)
  python benchmarks/agent_bench.py --paper=pin --policy=DIR --task_lm=DIR  # any HF directories

`--paper`: issue 15's configuration. Policy distilgpt2 (RLPrompt) or OPT-125m (PIN), masked-LM task
LM roberta-base or roberta-large, random weights of the real sizes (benchmarks/paper_models.py), SST-2
16-shot (32 examples), 16 prompts x 5 tokens, every prompt scored (no memo). Prints s/step split into
sample / reward / learn, the reward's FLOPs (real tokens) and FLOP/s against the machine's measured
matmul peak, peak memory, and, interleaved in the same process on the same prompts and weights, the
PyTorch (transformers) reward and hpprompt's padded reward (one padded row per sequence).

Prints three tables:
  1. seconds per training step split into sampling / reward / learner (PIN and RLPrompt presets), and
     task-LM tokens per second of the reward;
  2. reward seconds per step vs input length: the causal task LM scores prompts as continuations of
     inputs encoded once (`CausalScorer`), against re-running the whole sequence (`FullScorer`);
  3. reward seconds per step vs the number of prompts per step.
Rewards are not memoised here (every prompt is scored), so the numbers are the worst case.
"""
import argparse
import dataclasses
import functools
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import get_preset
from hpprompt.metrics import flops
from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.tasks.templates import Template

import timing  # benchmarks/, the script's directory

VERBALIZERS = (" terrible", " great")
TEMPLATE = "{sentence_1} {prompt}"


def _timed_step(agent, task, state, step):
  """One agent step with every prompt scored: (state, rollout, rewards, (sample, reward, learn) s)."""
  task.reward_memo.clear()
  t0 = time.perf_counter()
  state, rollout = agent.sample(state)
  jax.block_until_ready(rollout.tokens)
  prompts = agent.decode(rollout.tokens)
  t1 = time.perf_counter()
  rewards = task.step_rewards(prompts, step)
  t2 = time.perf_counter()
  state, _ = agent.learn(state, rollout, rewards.raw)
  jax.block_until_ready(state.train.params)
  return state, rollout, prompts, rewards, (t1 - t0, t2 - t1, time.perf_counter() - t2)


def step_breakdown(lm, tok, task, steps, prompts_per_step):
  rows = []
  for preset in ("pin", "rlprompt"):
    cfg = get_preset(preset, prompt_length=5, prompts_per_step=prompts_per_step, replay_batch=64,
                     replay_capacity=1024)
    agent = PromptAgent(lm, tok, cfg)
    state = agent.init(0)
    parts = {"sample": [], "reward": [], "learn": []}
    cont_tokens = []
    for i in range(steps + 2):                  # first two steps: compilation, buffer fill
      state, _, prompts, _, times = _timed_step(agent, task, state, i)
      if i >= 2:
        for key, value in zip(parts, times):
          parts[key].append(value)
        cont_tokens.append(sum(len(tok.encode(" " + p)) for p in prompts) * len(task.train))
    med = {k: statistics.median(v) for k, v in parts.items()}
    rows.append((preset, med, statistics.median(cont_tokens) / med["reward"]))
  return rows


def length_scaling(lm, tok, lengths, n_examples, n_prompts, repeats):
  rng = np.random.default_rng(0)
  words = [w for e in data.load_few_shot("sst-2", 0, "train") for w in e.text.split()]
  prompts = [f" It was {i}" for i in range(n_prompts)]
  rows = []
  for length in lengths:
    examples = [data.Example(" ".join(rng.choice(words, size=length)), i % 2)
                for i in range(n_examples)]
    tmpl = Template(TEMPLATE, masked_lm=False)
    causal = scoring.CausalScorer(lm, tok, tmpl, VERBALIZERS, prompt_group=n_prompts)
    full = scoring.FullScorer(lm, tok, tmpl, VERBALIZERS, chunk_size=n_examples * n_prompts)
    tokens = statistics.mean(len(tok.encode(e.text)) for e in examples)
    t_causal = timing.median_seconds(lambda: causal.class_logits(prompts, examples), repeats)
    t_full = timing.median_seconds(lambda: full.class_logits(prompts, examples), repeats)
    rows.append((length, tokens, t_causal, t_full))
  return rows


def prompt_scaling(lm, tok, counts, repeats):
  train = data.load_few_shot("sst-2", 0, "train")
  rows = []
  for n in counts:
    scorer = scoring.CausalScorer(lm, tok, Template(TEMPLATE, masked_lm=False), VERBALIZERS,
                                  prompt_group=n)
    prompts = [f" It was {i}" for i in range(n)]
    rows.append((n, timing.median_seconds(lambda: scorer.class_logits(prompts, train), repeats)))
  return rows


PAPER_ROWS = {   # name -> (preset, policy, task LM)
    "rlprompt-base": ("rlprompt", "distilgpt2", "roberta-base"),
    "pin-base": ("pin", "opt-125m", "roberta-base"),
    "rlprompt-large": ("rlprompt", "distilgpt2", "roberta-large"),
    "pin-large": ("pin", "opt-125m", "roberta-large"),
}
# Issue 15's measurements of the official RLPrompt / PIN code, same models and settings (s/step).
OFFICIAL = {"rlprompt-base": 63.0, "pin-base": 80.2, "rlprompt-large": 168.6, "pin-large": 184.4}
MLM_TEMPLATE = "{sentence_1} {prompt} <mask> ."


def _peak_rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def paper_row(name, args, peak):
  """One row of issue 15's table: our steps first (peak memory before PyTorch is loaded), then the
  rewards of the last step's prompts interleaved: hpprompt packed, hpprompt padded, PyTorch."""
  import paper_models  # noqa: PLC0415  (benchmarks/ is the script's directory)
  preset, policy_name, task_name = PAPER_ROWS.get(name, (name, None, None))
  policy_dir = args.policy or paper_models.build(policy_name, args.model_dir)
  task_dir = args.task_lm or paper_models.build(task_name, args.model_dir)
  policy, policy_tok = hub.load_pretrained(policy_dir)
  task_lm, task_tok = hub.load_pretrained(task_dir)
  train = data.load_few_shot("sst-2", 0, "train")
  scorer = scoring.make_scorer(task_lm, task_tok, MLM_TEMPLATE, VERBALIZERS,
                               pack_length=args.pack_length)
  task = ClassificationTask(scorer, train, train)
  cfg = get_preset(preset)
  if cfg.filter_top_k and cfg.filter_top_k > policy_tok.vocab_size // 2:   # tiny test vocabularies
    cfg = dataclasses.replace(cfg, filter_top_k=policy_tok.vocab_size // 2)
  agent = PromptAgent(policy, policy_tok, cfg)
  state = agent.init(0)
  parts = {"sample": [], "reward": [], "learn": [], "flops": []}
  for i in range(args.steps + 1):                       # step 0: compilation
    state, rollout, prompts, rewards, times = _timed_step(agent, task, state, i)
    print(f"  {name} step {i}: sample {times[0]:.2f} s, reward {times[1]:.2f} s, "
          f"learn {times[2]:.2f} s", flush=True)
    if i >= 1:
      for key, value in zip(parts, times + (rewards.metrics["reward_flops"],)):
        parts[key].append(value)
  med = {k: statistics.median(v) for k, v in parts.items()}
  if agent.cfg.replay:            # PIN: the buffer fills at 16 prompts a step; time a full update
    learn_times, learned = [], 0
    while learned < 3:
      t = time.perf_counter()
      state, metrics = agent.learn(state, rollout, rewards.raw)
      jax.block_until_ready(state.train.params)
      if "loss" in metrics:
        learned += 1
        learn_times.append(time.perf_counter() - t)
    med["learn"] = statistics.median(learn_times[1:])    # the first one compiles
  memory = _peak_rss_gib()
  if not args.reward_repeats:
    return dict(name=name, med=med, memory=memory, peak=peak)
  texts = [scorer.template.render(e.text, p, mask_token="<mask>") for e in train for p in prompts]
  lengths = [len(task_tok.encode(t, add_special_tokens=True)) for t in texts]
  padded = scoring.make_scorer(task_lm, task_tok, MLM_TEMPLATE, VERBALIZERS, pack_length=None)
  padded.class_logits(prompts, train)                   # compile
  torch_reward = paper_models.TorchReward(task_dir, VERBALIZERS, head=args.torch_head)
  others = {}                                           # other row lengths to compare
  for length in args.compare_pack:
    others[f"packed {length}"] = scoring.make_scorer(task_lm, task_tok, MLM_TEMPLATE, VERBALIZERS,
                                                     pack_length=length)
    others[f"packed {length}"].class_logits(prompts, train)               # compile
  fns = {"packed": lambda: scorer.class_logits(prompts, train),
         "padded": lambda: padded.class_logits(prompts, train),
         "torch": lambda: torch_reward.class_logits(texts).reshape(len(train), len(prompts), -1)}
  fns.update({k: functools.partial(v.class_logits, prompts, train) for k, v in others.items()})
  times = {k: [] for k in fns}
  out = {}
  for _ in range(args.reward_repeats):                  # interleaved: same load on each
    for key, fn in fns.items():
      t = time.perf_counter()
      out[key] = fn()
      times[key].append(time.perf_counter() - t)
  rt = {k: statistics.median(v) for k, v in times.items()}
  diff = {k: float(np.abs(out["packed"] - out[k]).max()) for k in fns}
  return dict(name=name, med=med, memory=memory, rt=rt, diff=diff, peak=peak,
              tokens=sum(lengths), mean_len=statistics.mean(lengths), max_len=max(lengths),
              shapes=sorted(scorer.shapes), slots=scorer.slots, real=scorer.tokens,
              padded_slots=padded.slots // (args.reward_repeats + 1), padded_real=padded.tokens
              // (args.reward_repeats + 1))


def print_paper_rows(rows):
  print("\n| row | sample (s) | reward (s) | learn (s) | step (s) | reward TFLOP | reward GFLOP/s "
        "| % of matmul peak | peak memory (GiB) | official s/step (issue) |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for r in rows:
    m = r["med"]
    rate = m["flops"] / m["reward"]
    print(f"| {r['name']} | {m['sample']:.2f} | {m['reward']:.2f} | {m['learn']:.2f} | "
          f"{m['sample'] + m['reward'] + m['learn']:.2f} | {m['flops'] / 1e12:.2f} | "
          f"{rate / 1e9:.1f} | {100 * rate / r['peak']:.0f}% | {r['memory']:.2f} | "
          f"{OFFICIAL.get(r['name'], float('nan')):.1f} |")
  rows = [r for r in rows if "rt" in r]
  if not rows:
    return
  print("\nReward of the same prompts, interleaved (median s): hpprompt packed / padded / PyTorch")
  print("\n| row | tokens (mean / max) | packed (s) | padded (s) | PyTorch (s) | padded / packed "
        "| PyTorch / packed | slots computed: packed / padded | packed shapes | max abs diff: "
        "padded / PyTorch |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
  for r in rows:
    t = r["rt"]
    print(f"| {r['name']} | {r['tokens']} ({r['mean_len']:.1f} / {r['max_len']}) | "
          f"{t['packed']:.2f} | {t['padded']:.2f} | {t['torch']:.2f} | "
          f"{t['padded'] / t['packed']:.2f}x | {t['torch'] / t['packed']:.2f}x | "
          f"{r['slots'] / r['real']:.2f} / {r['padded_slots'] / r['padded_real']:.2f} x real | "
          f"{r['shapes']} | {r['diff']['padded']:.1e} / {r['diff']['torch']:.1e} |")
  for r in rows:
    for key in r["rt"]:
      if key.startswith("packed "):
        print(f"{r['name']}: rows of {key[7:]} tokens: {r['rt'][key]:.2f} s "
              f"({r['rt'][key] / r['rt']['packed']:.2f}x the default), max abs diff "
              f"{r['diff'][key]:.1e}")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--lm", default="smollm2", help="policy and task LM (hub name, dir, smollm2)")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--quick", action="store_true", help="fewer settings")
  parser.add_argument("--paper", default="", help="comma-separated rows of issue 15's table: "
                      f"{', '.join(PAPER_ROWS)}; or 'pin'/'rlprompt' with --policy and --task_lm")
  parser.add_argument("--policy", help="--paper: policy LM directory instead of the random one")
  parser.add_argument("--task_lm", help="--paper: masked task LM directory")
  parser.add_argument("--model_dir", default="/tmp/hpprompt_paper_models",
                      help="where the random paper-size models are built (once)")
  parser.add_argument("--pack_length", type=int, default=128)
  parser.add_argument("--reward_repeats", type=int, default=2)
  parser.add_argument("--compare_pack", type=lambda v: [int(x) for x in v.split(",") if x],
                      default=[], help="also time packed rows of these lengths, e.g. 64,256")
  parser.add_argument("--torch_head", default="mask", choices=("mask", "full"))
  args = parser.parse_args()
  if args.paper and "," in args.paper:        # one process per row: clean peak memory per row
    for name in args.paper.split(","):
      argv = [a for a in sys.argv[1:] if not a.startswith("--paper")] + [f"--paper={name}"]
      subprocess.run([sys.executable, __file__, *argv], check=True)
    return
  if args.paper:
    preset, policy_name, task_name = PAPER_ROWS.get(args.paper, (args.paper, None, None))
    for name, given in ((policy_name, args.policy), (task_name, args.task_lm)):
      if not given:                           # built in a child process: no torch in our memory
        subprocess.run([sys.executable, "-c", f"import paper_models; paper_models.build("
                        f"{name!r}, {args.model_dir!r})"], check=True,
                       cwd=os.path.dirname(os.path.abspath(__file__)))
    peak = flops.matmul_peak(2048)
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; measured matmul "
          f"peak (2048^3, float32, jitted): {peak / 1e9:.1f} GFLOP/s; bfloat16: "
          f"{flops.matmul_peak(2048, jnp.bfloat16) / 1e9:.1f} GFLOP/s", flush=True)
    print_paper_rows([paper_row(args.paper, args, peak)])
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return
  lm, tok = hub.load_pretrained(args.lm)
  train = data.load_few_shot("sst-2", 0, "train")
  task = ClassificationTask(scoring.make_scorer(lm, tok, TEMPLATE, VERBALIZERS), train, train)
  print(f"\n{args.lm}: {sum(x.size for x in jax.tree.leaves(lm)) / 1e6:.1f}M parameters, "
        f"{os.cpu_count()} CPU cores, {len(jax.devices())} JAX device(s)\n")

  print("| preset | sample (s) | reward (s) | learn (s) | step (s) | reward tokens/s |")
  print("| --- | ---: | ---: | ---: | ---: | ---: |")
  for preset, med, tps in step_breakdown(lm, tok, task, args.steps, 16):
    total = sum(med.values())
    print(f"| {preset} (16 prompts x 5 tokens, 32 examples) | {med['sample']:.2f} | "
          f"{med['reward']:.2f} | {med['learn']:.2f} | {total:.2f} | {tps:,.0f} |")

  lengths = (16, 64) if args.quick else (16, 64, 256)
  print("\n| input words | input tokens | shared prefix (s) | full sequences (s) | full / prefix |")
  print("| ---: | ---: | ---: | ---: | ---: |")
  for length, tokens, t_c, t_f in length_scaling(lm, tok, lengths, 32, 8, args.repeats):
    print(f"| {length} | {tokens:.0f} | {t_c:.2f} | {t_f:.2f} | {t_f / t_c:.1f}x |")

  counts = (4, 8) if args.quick else (4, 8, 16)
  print("\n| prompts per step | reward (s) | per prompt (s) |")
  print("| ---: | ---: | ---: |")
  for n, t in prompt_scaling(lm, tok, counts, args.repeats):
    print(f"| {n} | {t:.2f} | {t / n:.3f} |")


if __name__ == "__main__":
  main()
