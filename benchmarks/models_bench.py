"""Forward and cached-decoding speed: hpprompt (JAX) vs transformers (PyTorch) on the same CPU.

  python benchmarks/models_bench.py            # distilgpt2- and roberta-base-sized random models
  python benchmarks/models_bench.py --quick    # smaller batch, fewer repeats

Random weights (no download): the models are built by transformers from configs with the real sizes,
saved, and loaded through hpprompt's converter, so both sides run the same weights. Prints one table:
median milliseconds per call and the ratio torch / hpprompt (> 1: hpprompt is faster).
"""
import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from flax import nnx

from hpprompt.models import hub


def _median_ms(fn, repeats: int, warmup: int = 2) -> float:
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append((time.perf_counter() - t) * 1000)
  return statistics.median(times)


def _jax_forward(model):
  graphdef, state = nnx.split(model)

  @jax.jit
  def fwd(state, ids, mask):
    return nnx.merge(graphdef, state)(ids, attention_mask=mask).logits
  return lambda ids, mask: fwd(state, ids, mask).block_until_ready()


def _jax_decode(model, steps: int):
  """Prefill the prompt into a cache, then `steps` greedy tokens one at a time (all jitted)."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def prefill(state, ids):
    m = nnx.merge(graphdef, state)
    out = m(ids, cache=m.init_cache(ids.shape[0], ids.shape[1] + steps))
    return out.cache, jnp.argmax(out.logits[:, -1], -1)

  @jax.jit
  def step(state, cache, tok):
    out = nnx.merge(graphdef, state)(tok[:, None], cache=cache)
    return out.cache, jnp.argmax(out.logits[:, -1], -1)

  def run(ids):
    cache, tok = prefill(state, ids)
    for _ in range(steps):
      cache, tok = step(state, cache, tok)
    return tok.block_until_ready()
  return run


def _torch_decode(model, steps: int):
  def run(ids):
    with torch.no_grad():
      out = model(ids, use_cache=True)
      tok = out.logits[:, -1].argmax(-1)
      past = out.past_key_values
      for _ in range(steps):
        out = model(tok[:, None], past_key_values=past, use_cache=True)
        past, tok = out.past_key_values, out.logits[:, -1].argmax(-1)
    return tok
  return run


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  batch, length, repeats, steps = (4, 32, 3, 5) if args.quick else (16, 64, 7, 5)
  torch.set_num_threads(os.cpu_count())
  rng = np.random.default_rng(0)
  rows = []
  configs = {
      "distilgpt2 (6L, 768)": (transformers.GPT2LMHeadModel,
                               transformers.GPT2Config(n_layer=6, bos_token_id=0, eos_token_id=0)),
      "roberta-base (12L, 768)": (transformers.RobertaForMaskedLM, transformers.RobertaConfig(
          vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1)),
  }
  with tempfile.TemporaryDirectory() as tmp:
    for name, (cls, cfg) in configs.items():
      torch.manual_seed(0)
      tmodel = cls(cfg).eval()
      path = os.path.join(tmp, name.split()[0])
      tmodel.save_pretrained(path)
      jmodel = hub.load_model(path)
      vocab = cfg.vocab_size
      ids = rng.integers(3, vocab, size=(batch, length))
      mask = np.ones_like(ids)
      jf = _jax_forward(jmodel)
      j_ids, j_mask = jnp.asarray(ids, jnp.int32), jnp.asarray(mask, bool)
      t_ids, t_mask = torch.tensor(ids), torch.tensor(mask)

      def tf():
        with torch.no_grad():
          return tmodel(input_ids=t_ids, attention_mask=t_mask).logits
      rows.append((name, f"forward {batch}x{length}", _median_ms(lambda: jf(j_ids, j_mask), repeats),
                   _median_ms(tf, repeats)))
      if cls is transformers.GPT2LMHeadModel:
        jd, td = _jax_decode(jmodel, steps), _torch_decode(tmodel, steps)
        rows.append((name, f"prefill {length} + {steps} cached steps, batch {batch}",
                     _median_ms(lambda: jd(j_ids), repeats), _median_ms(lambda: td(t_ids), repeats)))
  print(f"\nCPU: {os.cpu_count()} cores, jax {jax.__version__} ({jax.devices()[0].platform}), "
        f"torch {torch.__version__}, transformers {transformers.__version__}\n")
  print("| model | workload | hpprompt (ms) | transformers (ms) | torch / hpprompt |")
  print("| --- | --- | ---: | ---: | ---: |")
  for name, work, j, t in rows:
    print(f"| {name} | {work} | {j:.1f} | {t:.1f} | {t / j:.2f}x |")


if __name__ == "__main__":
  main()
