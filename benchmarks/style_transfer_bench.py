"""Style-transfer generation: hpprompt's jitted sampler vs transformers `generate`, same weights.

  python benchmarks/style_transfer_bench.py                  # random GPT-2, SmolLM2
  python benchmarks/style_transfer_bench.py --quick          # fewer prompts / samples
  python benchmarks/style_transfer_bench.py --run=runs/st    # + one training step's time split

Workload: P prompts x N Yelp sources x S samples with RLPrompt's template, top-k 10 sampling and
length rule. hpprompt: one jitted call (prompts encoded once, KV cache, stops when every row has
closed its quote). transformers: what RLPrompt's code does, one `generate(num_return_sequences=S)`
per (prompt, source) pair with `max_new_tokens` of the source (it has no stop at `"`;
post-processing
cuts there). Both produce P N S post-processed outputs; the table shows seconds per workload
(median of repeats after a warm-up call, so compilation is excluded) and outputs per second.
`hpprompt, all rows to the end`: the same sampler with `compact_every=0` (finished rows keep
running until the last one stops); `decoding rows per call`: the batch of each decoding call of
the last timed workload (finished rows dropped every 4 steps).
`--before=FILE`: that older generation.py's sampler is timed on the same workload in the same run.
With `--run`, the mean seconds of a step from that run's metrics.jsonl: policy sampling, task-LM
generation, reward scoring (BERTScore + classifier) and learning.
"""
import argparse
import importlib.util
import json
import os
import tempfile

import jax
import numpy as np
import torch
import transformers

from hpprompt.models import hub
from hpprompt.tasks import generation
from hpprompt.tasks import style_data

import timing  # benchmarks/, the script's directory

PROMPTS = ["Here is a positive review:", "Rewrite this:", " great", " The opposite of this is"]


def _torch_generate(tmodel, hf_tok, gen, prompts, sources, samples, start):
  """RLPrompt's loop: one sampled generate call per (prompt, source) pair."""
  outs = []
  for p in prompts:
    for s in sources:
      text = (start or "") + generation.TEMPLATE.format(prompt=p, sentence_1=s)
      ids = torch.tensor([hf_tok(text, add_special_tokens=False)["input_ids"]])
      limit = generation.max_new_tokens(len(gen.tokenizer.encode(s)))
      with torch.no_grad():
        out = tmodel.generate(ids, do_sample=True, top_k=10, top_p=1.0, max_new_tokens=limit,
                              num_return_sequences=samples, pad_token_id=hf_tok.eos_token_id or 0,
                              attention_mask=torch.ones_like(ids))
      outs += [generation.postprocess(hf_tok.decode(o[ids.shape[1]:], skip_special_tokens=True))
               for o in out]
  return outs


def _load_module(path):
  spec = importlib.util.spec_from_file_location("generation_before", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def bench(name, jmodel, jtok, tmodel, hf_tok, start, prompts, sources, samples, repeats,
          before=None):
  gen = generation.Generator(jmodel, jtok, lower=True, start_token=start)
  whole = generation.Generator(jmodel, jtok, lower=True, start_token=start, compact_every=0)
  key = [jax.random.PRNGKey(0)]

  def ours(g=gen):
    key[0] = jax.random.fold_in(key[0], 1)
    return g.generate(prompts, sources, samples, key[0])
  j = timing.median_seconds(ours, repeats)
  rows = list(getattr(gen, "decode_rows", []))
  one_call = timing.median_seconds(lambda: ours(whole), repeats)
  old = None
  if before is not None:
    old_gen = _load_module(before).Generator(jmodel, jtok, lower=True, start_token=start)
    old = timing.median_seconds(lambda: ours(old_gen), repeats)
  t = timing.median_seconds(lambda: _torch_generate(tmodel, hf_tok, gen, prompts, sources, samples, start),
                repeats)
  n = len(prompts) * len(sources) * samples
  return (name, f"{len(prompts)} x {len(sources)} x {samples}", j, t, n, one_call, rows, old)


def step_split(run_dir: str) -> None:
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f][1:]      # step 1 includes compilation
  keys = ("time_sample", "time_generate", "time_score", "time_learn", "time_reward")
  mean = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
  print(f"\nOne training step of {run_dir} (mean over steps 2-{len(rows) + 1}, seconds):\n")
  print("| policy sampling | task-LM generation | reward scoring | learn | total |")
  print("| ---: | ---: | ---: | ---: | ---: |")
  total = mean["time_sample"] + mean["time_reward"] + mean["time_learn"]
  print(f"| {mean['time_sample']:.2f} | {mean['time_generate']:.2f} | {mean['time_score']:.2f} | "
        f"{mean['time_learn']:.2f} | {total:.2f} |")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--run", default=None, help="A style-transfer run directory.")
  parser.add_argument("--skip_smollm2", action="store_true")
  parser.add_argument("--skip_gpt2", action="store_true")
  parser.add_argument("--repeats", type=int, default=None, help="Override the repeats.")
  parser.add_argument("--before", default=None, help="An older hpprompt/tasks/generation.py "
                      "(e.g. from `git show REV:hpprompt/tasks/generation.py`), timed too.")
  parser.add_argument("--samples", type=int, default=None, help="Override the samples.")
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  sources = style_data.load("yelp", "0to1").test[:2 if args.quick else 4]
  prompts = PROMPTS[:2] if args.quick else PROMPTS
  samples, repeats = (4, 1) if args.quick else (8, 3)
  repeats, samples = args.repeats or repeats, args.samples or samples
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    if not args.skip_gpt2:
      cfg = transformers.GPT2Config(n_layer=6, bos_token_id=0, eos_token_id=0)
      tmodel = transformers.GPT2LMHeadModel(cfg).eval()
      tmodel.save_pretrained(tmp)
      from tests import tiny  # noqa: PLC0415  (a BPE tokenizer for the random GPT-2)
      jtok_dir = tiny.make_gpt2(os.path.join(tmp, "tok"))
      hf_tok = transformers.AutoTokenizer.from_pretrained(jtok_dir)
      _, jtok = hub.load_pretrained(jtok_dir)
      jmodel = hub.load_model(tmp)
      rows.append(bench("distilgpt2-sized GPT-2 (random, 6L 768)", jmodel, jtok, tmodel, hf_tok,
                        None, prompts, sources, samples, repeats, args.before))
  if not args.skip_smollm2:
    from hpprompt.models import smollm2  # noqa: PLC0415
    path = smollm2.gguf_path()
    tmodel = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                        gguf_file=os.path.basename(path))
    jmodel, jtok = hub.load_pretrained("smollm2")
    rows.append(bench("SmolLM2-135M", jmodel, jtok, tmodel, hf_tok, "<|endoftext|>", prompts,
                      sources, samples, repeats, args.before))
  print(f"\nCPU: {os.cpu_count()} cores, jax {jax.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}\n")
  print(f"load average {os.getloadavg()[0]:.1f}\n")
  print("| task LM | prompts x sources x samples | hpprompt (s) | transformers (s) | "
        "outputs/s hpprompt | outputs/s transformers | speed-up | hpprompt, all rows to the end "
        "(s) | decoding rows per call | --before (s) |")
  print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
  for name, work, j, t, n, one_call, batch_rows, old in rows:
    print(f"| {name} | {work} | {j:.2f} | {t:.2f} | {n / j:.1f} | {n / t:.1f} | "
          f"{t / j:.1f}x | {one_call:.2f} | {' '.join(map(str, batch_rows))} | "
          f"{'-' if old is None else f'{old:.2f}'} |")
  if args.run:
    step_split(args.run)


if __name__ == "__main__":
  main()
