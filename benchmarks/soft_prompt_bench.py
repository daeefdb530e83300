"""Soft prompt / InfoPrompt batches: packed rows vs one padded row per example, interleaved.

  PYTHONPATH=$PWD python benchmarks/soft_prompt_bench.py                     # SmolLM2, SST-2
  PYTHONPATH=$PWD python benchmarks/soft_prompt_bench.py --test_limit=256 --repeats=2
  PYTHONPATH=$PWD python benchmarks/soft_prompt_bench.py --task_lm=HF_DIR --template="{sentence_1} {prompt} <mask> ."

Task LM SmolLM2-135M (or any local HF directory), SST-2 16-shot seed 0 (32 training examples, the
launcher's full batch), prompt length 5. Per method and template, the same jitted training step
(`jit_train_step`, forward + backward + AdamW) and the test-set evaluation (`EmbeddingTask.predict`,
chunks of 128 length-sorted examples) run with `pack_length=128` (packed) and `pack_length=None`
(one padded row per example: the code before packing), calls alternating so that both see the same
machine load; medians after one warm-up call (compilation excluded). Slots = token slots the task
LM computes per real token (padding included). The templates with the inputs before the prompt
and a causal LM are cached (`EmbeddingTask.cached`: inputs encoded once, only the prompt runs), so
packing only changes InfoPrompt's prompt-free pass there.
"""
import argparse
import os
import statistics
import time

import jax
import numpy as np

from hpprompt import gradient
from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import embedding_task

CASES = (("soft", "{prompt} {sentence_1} It was"), ("infoprompt", "{prompt} {sentence_1} It was"),
         ("infoprompt", "{sentence_1} {prompt}"))


def _slots(batch) -> tuple[int, int]:
  mask = np.asarray(batch.mask)
  return mask.size, int(mask.sum())


def case(model, tok, method_name, template, train, test, repeats, length=5):
  out = {}
  runs = {}
  for layout, pack in (("packed", 128), ("padded", None)):
    emb = embedding_task.EmbeddingTask(model, tok, template, (" terrible", " great"),
                                       pack_length=pack)
    cfg = gradient.METHODS[method_name].config_class(prompt_length=length)
    method = gradient.METHODS[method_name](emb, cfg)
    state = method.init(0)
    batch = emb.encode(train, length, null=method.needs_null)
    params = state.params
    predict = lambda e=emb, m=method, p=params: e.predict(lambda b: m.logits(p, b), test, length,
                                                          null=m.eval_needs_null)
    step = lambda m=method, s=state, b=batch: jax.block_until_ready(m.train_step(s, b))
    runs[layout] = (step, predict, _slots(batch), emb)
  times = {(layout, what): [] for layout in runs for what in ("step", "test")}
  for layout, (step, predict, _, _) in runs.items():   # warm-up: compile every shape
    step(), predict()
  for _ in range(repeats):
    for layout, (step, predict, _, _) in runs.items():
      t = time.perf_counter()
      step()
      times[layout, "step"].append(time.perf_counter() - t)
      t = time.perf_counter()
      logits = predict()
      times[layout, "test"].append(time.perf_counter() - t)
      out[layout, "logits"] = logits
  for key, values in times.items():
    out[key] = statistics.median(values)
  for layout, (_, _, (slots, real), emb) in runs.items():
    out[layout, "slots"] = slots / real
    out[layout, "cached"] = emb.cached
  out["diff"] = float(np.abs(out["packed", "logits"] - out["padded", "logits"]).max())
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--task_lm", default="smollm2")
  parser.add_argument("--test_limit", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--template", default=None, help="Only this template (all methods).")
  args = parser.parse_args()
  model, tok = hub.load_pretrained(args.task_lm)
  train = data.load_few_shot("sst-2", 0, "train")
  test = data.load_few_shot("sst-2", 0, "test")[:args.test_limit]
  cases = CASES if args.template is None else (("soft", args.template),
                                               ("infoprompt", args.template))
  print(f"{args.task_lm}, SST-2: {len(train)} train (one step = the full batch), {len(test)} test "
        f"examples, load average at start {os.getloadavg()[0]:.1f}\n")
  print("| method | template | cached | step packed (s) | step padded (s) | padded / packed | "
        "test packed (s) | test padded (s) | padded / packed | train slots per token packed / "
        "padded | max abs logit diff | load |")
  print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
  for name, template in cases:
    r = case(model, tok, name, template, train, test, args.repeats)
    print(f"| {name} | `{template}` | {r['packed', 'cached']} | {r['packed', 'step']:.2f} | "
          f"{r['padded', 'step']:.2f} | {r['padded', 'step'] / r['packed', 'step']:.2f}x | "
          f"{r['packed', 'test']:.2f} | {r['padded', 'test']:.2f} | "
          f"{r['padded', 'test'] / r['packed', 'test']:.2f}x | {r['packed', 'slots']:.2f} / "
          f"{r['padded', 'slots']:.2f} | {r['diff']:.1e} | {os.getloadavg()[0]:.1f} |",
          flush=True)


if __name__ == "__main__":
  main()
