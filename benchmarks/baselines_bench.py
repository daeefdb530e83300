"""Train-step time of the continuous-prompt baselines, and cached vs. full-sequence inputs.

  python benchmarks/baselines_bench.py                      # SmolLM2-135M, SST-2 train (32), L = 5
  python benchmarks/baselines_bench.py --task_lm=path/to/tiny --steps=5

Per method: compile time of the first step and mean time of the next `--steps` (full batch).
For the soft prompt also with the inputs re-encoded every step (`cache_inputs=False`), which is
what a causal task LM costs without `EmbeddingTask`'s input cache.
"""
import time

import jax
from absl import app
from absl import flags
from absl import logging

from hpprompt import gradient
from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import embedding_task

flags.DEFINE_string("task_lm", "smollm2", "Task LM: hub name, local HF dir, or 'smollm2'.")
flags.DEFINE_integer("prompt_length", 5, "Prompt vectors.")
flags.DEFINE_integer("steps", 5, "Timed steps per method.")
flags.DEFINE_list("methods", ["soft", "infoprompt", "pez"], "Methods to time.")
FLAGS = flags.FLAGS


def _time(method, batch, steps):
  state = method.init(0)
  t0 = time.time()
  state, metrics = method.train_step(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.time() - t0
  t0 = time.time()
  for _ in range(steps):
    state, metrics = method.train_step(state, batch)
  jax.block_until_ready(metrics)
  return compile_s, (time.time() - t0) / steps


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  model, tokenizer = hub.load_pretrained(FLAGS.task_lm)
  train = data.load_few_shot("sst-2", 0, "train")
  spec = data.get_spec("sst-2")
  rows = []
  for cached in (True, False):
    task = embedding_task.EmbeddingTask(model, tokenizer, spec.causal_template, spec.verbalizers,
                                        cache_inputs=cached)
    for name in FLAGS.methods if cached else ["soft"]:
      cls = gradient.METHODS[name]
      method = cls(task, cls.config_class(prompt_length=FLAGS.prompt_length))
      batch = task.encode(train, FLAGS.prompt_length, null=method.needs_null)
      compile_s, step_s = _time(method, batch, FLAGS.steps)
      rows.append((name, "cached" if cached else "full", compile_s, step_s))
  print(f"task LM {FLAGS.task_lm}, {len(train)} examples per step, L = {FLAGS.prompt_length}, "
        f"{jax.devices()[0].platform} x {jax.device_count()}")
  print(f"{'method':<12}{'inputs':<8}{'first step (s)':>16}{'step (s)':>10}")
  for name, mode, compile_s, step_s in rows:
    print(f"{name:<12}{mode:<8}{compile_s:>16.2f}{step_s:>10.3f}")


if __name__ == "__main__":
  app.run(main)
