"""Where an agent training step spends its time, and how it scales with input length and prompts.

  python benchmarks/agent_bench.py                    # real SmolLM2-135M as policy and task LM
  python benchmarks/agent_bench.py --lm=/path/to/hf_dir --steps=5
  python benchmarks/agent_bench.py --paper=rlprompt-base,pin-base   # the papers' models (below)
  python benchmarks/agent_bench.py --paper=pin --policy=DIR --task_lm=DIR  # any HF directories

`--paper`: hpprompt's step against the official RLPrompt / PIN step, both timed in this run on this
machine (`paper_compare.py`, `official_step.py`): policy distilgpt2 (RLPrompt) or OPT-125m (PIN),
masked task LM roberta-base or roberta-large, random weights of the real sizes
(`paper_models.py`), SST-2 16-shot (32 examples), 16 prompts x 5 tokens, every prompt scored.

Without `--paper` (SmolLM2-135M):
Prints three tables:
  1. seconds per training step split into sampling / reward / learner (PIN and RLPrompt presets), and
     task-LM tokens per second of the reward;
  2. reward seconds per step vs input length: the causal task LM scores prompts as continuations of
     inputs encoded once (`CausalScorer`), against re-running the whole sequence (`FullScorer`);
  3. reward seconds per step vs the number of prompts per step.
Rewards are not memoised here (every prompt is scored), so the numbers are the worst case.
"""
import argparse
import os
import statistics
import time

import jax
import numpy as np
import paper_compare  # benchmarks/, the script's directory
import timing

from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import get_preset
from hpprompt.models import hub
from hpprompt.tasks import data, scoring
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.tasks.templates import Template

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


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--lm", default="smollm2", help="policy and task LM (hub name, dir, smollm2)")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--quick", action="store_true", help="fewer settings")
  parser.add_argument("--paper", default="", help="comma-separated rows, hpprompt vs the official "
                      f"step: {', '.join(paper_compare.ROWS)}; or 'pin'/'rlprompt' with --policy "
                      "and --task_lm")
  parser.add_argument("--policy", help="--paper: policy LM directory instead of the random one")
  parser.add_argument("--task_lm", help="--paper: masked task LM directory")
  parser.add_argument("--model_dir", default="/tmp/hpprompt_paper_models",
                      help="where the random paper-size models are built (once)")
  parser.add_argument("--tiny", action="store_true", help="--paper: 2-layer models (a quick check)")
  parser.add_argument("--pack_length", type=int, default=128)
  parser.add_argument("--reward_repeats", type=int, default=0, help="--paper: also time the same "
                      "prompts' rewards, interleaved this many times")
  parser.add_argument("--row_out", help=argparse.SUPPRESS)     # --paper: one row's JSON (internal)
  args = parser.parse_args()
  if args.paper:
    paper_compare.main(args)
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
