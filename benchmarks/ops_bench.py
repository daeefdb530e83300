"""CPU benchmark of hpprompt.ops sparsemax / spmax and the sparse soft-Q loss.

Compares, on PIN-sized logit batches (replay batch 256 x 5 steps over OPT's 50,272 tokens):
  * hpprompt:  jax.jit(jax.vmap(hpprompt.ops.sparsemax)) and spmax (top-k certificate + Michelot);
  * optax:     jax.jit(jax.vmap(optax.projections.projection_simplex)) (a full sort per row),
               with the value p.z + 1/2 (1 - p.p) on top;
  * torch:     a sort-based PyTorch version written the way PIN's `sparse_max_operator` computes it
               (ascending torch.sort, flipped cumsum, support mask, tau).
Every output is compared with a float64 NumPy reference. One markdown table is printed.

Usage:
  python benchmarks/ops_bench.py            # full shapes (~10 min on a 2-core CPU)
  python benchmarks/ops_bench.py --quick    # small shapes, for a smoke test
"""
import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from hpprompt import ops

OPT_VOCAB = 50272
GPT2_VOCAB = 50257
PIN_FILL = -1000.0      # PIN's MIN_LOGIT_VALUE for filtered tokens (optax and torch take no mask)
PIN_TOP_K = 10_000      # PIN's fluent_top_k


# --- the three implementations --------------------------------------------------------------------


def _hp_fns(masked):
  if masked:
    return (jax.jit(jax.vmap(lambda z, m: ops.sparsemax(z, m))),
            jax.jit(jax.vmap(lambda z, m: ops.spmax(z, m))))
  return jax.jit(jax.vmap(ops.sparsemax)), jax.jit(jax.vmap(ops.spmax))


def _optax_spmax(z):
  p = optax.projections.projection_simplex(z)
  return p @ z + 0.5 * (1.0 - p @ p)


_optax_sparsemax_b = jax.jit(jax.vmap(optax.projections.projection_simplex))
_optax_spmax_b = jax.jit(jax.vmap(_optax_spmax))


def _torch_threshold(z):
  """tau and the support mask over the sorted values, as in PIN's sparse_max_operator."""
  values, _ = torch.sort(z, dim=-1)                                     # ascending
  cumsum = values.flip(dims=[-1]).cumsum(dim=-1).flip(dims=[-1])        # sum of entries >= values
  k = torch.arange(z.shape[-1], 0, -1, dtype=z.dtype)                   # how many are >= values
  support = k * values + 1 > cumsum
  size = support.sum(-1)
  tau = ((support * values).sum(-1) - 1.0) / size
  return values, support, tau


def torch_sparsemax(z):
  _, _, tau = _torch_threshold(z)
  return torch.clamp(z - tau[:, None], min=0.0)


def torch_spmax(z):
  values, support, tau = _torch_threshold(z)
  return 0.5 * (support * (values * values - tau[:, None] ** 2)).sum(-1) + 0.5


# --- float64 reference ----------------------------------------------------------------------------


def reference(z, mask=None, chunk=64):
  """(p, spmax) in float64 by the sort rule, `chunk` rows at a time."""
  ps, vs = [], []
  for i in range(0, z.shape[0], chunk):
    x = z[i:i + chunk].astype(np.float64)
    if mask is not None:
      x = np.where(mask[i:i + chunk], x, -np.inf)
    s = -np.sort(-x, axis=-1)
    cs = np.cumsum(s, -1)
    k = np.arange(1, x.shape[1] + 1)
    size = np.sum(1.0 + k * s > cs, -1)
    tau = (np.take_along_axis(cs, size[:, None] - 1, -1)[:, 0] - 1.0) / size
    p = np.maximum(x - tau[:, None], 0.0)
    ps.append(p)
    vs.append(tau + 0.5 + 0.5 * np.sum(p * p, -1))      # = <p, z> + 1/2 (1 - |p|^2)
  return np.concatenate(ps), np.concatenate(vs)


def reference_logsumexp(z):
  z = z.astype(np.float64)
  m = z.max(-1)
  return m + np.log(np.exp(z - m[..., None]).sum(-1))


# --- timing ---------------------------------------------------------------------------------------


def _block(x):
  return jax.block_until_ready(x) if not isinstance(x, torch.Tensor) else x


def timed(fn, *args, budget_s=4.0, max_reps=7):
  """Median wall time in ms after one warm-up call; >= 2 timed calls, more if they are fast."""
  out = _block(fn(*args))                                               # warm-up / compile
  times = []
  while len(times) < 2 or (sum(times) < budget_s and len(times) < max_reps):
    t0 = time.perf_counter()
    out = _block(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times), out


def max_diff(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)))


# --- cases ----------------------------------------------------------------------------------------


def logit_cases(quick, rng):
  rows = 64 if quick else 1280
  lm = (rng.standard_normal((rows, OPT_VOCAB), dtype=np.float32) * 3)
  uniform = (rng.standard_normal((rows, OPT_VOCAB), dtype=np.float32) * 1e-3)
  # PIN's filter F_I keeps the top-10000 tokens of the frozen LM's logits, correlated with Q.
  frozen = lm + rng.standard_normal(lm.shape, dtype=np.float32) * 3
  mask = np.zeros(lm.shape, bool)
  np.put_along_axis(mask, np.argpartition(-frozen, PIN_TOP_K, axis=-1)[:, :PIN_TOP_K], True, -1)
  del frozen
  gpt2 = rng.standard_normal((16, GPT2_VOCAB), dtype=np.float32) * 3
  return [
      (f"LM-like N(0, 3^2) [{rows}, {OPT_VOCAB}]", lm, None),
      (f"near-uniform N(0, 1e-3^2) [{rows}, {OPT_VOCAB}]", uniform, None),
      (f"LM-like + top-10000 mask [{rows}, {OPT_VOCAB}]", lm, mask),
      (f"LM-like N(0, 3^2) [16, {GPT2_VOCAB}]", gpt2, None),
  ]


def bench_logits(name, z, mask, rows_out):
  p_ref, v_ref = reference(z, mask)
  filled = z if mask is None else np.where(mask, z, np.float32(PIN_FILL))
  hp_sparsemax, hp_spmax = _hp_fns(mask is not None)
  hp_args = (jnp.asarray(z),) if mask is None else (jnp.asarray(z), jnp.asarray(mask))
  ox_args = (jnp.asarray(filled),)
  tz = torch.from_numpy(filled)
  for op, hp_fn, ox_fn, th_fn, want in (
      ("sparsemax", hp_sparsemax, _optax_sparsemax_b, torch_sparsemax, p_ref),
      ("spmax", hp_spmax, _optax_spmax_b, torch_spmax, v_ref)):
    row = {"case": name, "op": op}
    impls = (("hp", hp_fn, hp_args), ("optax", ox_fn, ox_args), ("torch", th_fn, (tz,)))
    for key, fn, args in impls:
      ms, out = timed(fn, *args)
      row[key] = ms
      row[key + "_err"] = max_diff(out, want)
      del out
    rows_out.append(row)
    print(_format_row(row), flush=True)


def bench_loss(quick, rng, rows_out):
  """v2_v3 loss + gradient w.r.t. q_t, T = 5, batch mean: hpprompt spmax vs optax, and Shannon."""
  b, t = (16, 5) if quick else (256, 5)
  q = rng.standard_normal((b, t, OPT_VOCAB), dtype=np.float32) * 3
  tq = q + rng.standard_normal(q.shape, dtype=np.float32) * 0.1
  a = rng.integers(0, OPT_VOCAB, size=(b, t)).astype(np.int32)
  r = rng.standard_normal(b).astype(np.float32)

  def loss_and_grad(value_fn):
    def loss(q, a, r, tq):
      per_traj = jax.vmap(lambda q, a, r, tq: ops.soft_q_loss("v2_v3", q, a, r, tq,
                                                              value_fn=value_fn))(q, a, r, tq)
      return jnp.mean(per_traj)
    return jax.jit(jax.value_and_grad(loss))

  def reference_loss(values):
    v = values(q.reshape(-1, OPT_VOCAB)).reshape(b, t)
    v_ = values(tq.reshape(-1, OPT_VOCAB)).reshape(b, t)
    adv = np.take_along_axis(q, a[..., None], -1)[..., 0].astype(np.float64) - v
    target2 = np.concatenate([v_[:, 1:], r[:, None]], 1) - v_                  # discount 1
    suffix = np.flip(np.cumsum(np.flip(adv, 1), 1), 1)
    l2 = (adv - target2) ** 2
    l3 = (suffix - (r[:, None] - v_)) ** 2
    return float(np.mean(np.sum((l2 + l3) / 2, 1)))

  tsallis_ref = reference_loss(lambda z: reference(z)[1])
  shannon_ref = reference_loss(reference_logsumexp)
  args = tuple(jnp.asarray(x) for x in (q, a, r, tq))
  name = f"v2_v3 loss + grad, [{b}, {t}, {OPT_VOCAB}]"
  hp_ms, (hp_loss, hp_grad) = timed(loss_and_grad(ops.tsallis_regularizer().value), *args)
  ox_ms, (ox_loss, ox_grad) = timed(loss_and_grad(lambda z, m=None: _optax_spmax(z)), *args)
  grad_diff = float(jnp.max(jnp.abs(hp_grad - ox_grad)))
  del hp_grad, ox_grad
  rows_out.append({"case": name, "op": "spmax value", "hp": hp_ms, "optax": ox_ms, "torch": None,
                   "hp_err": abs(float(hp_loss) - tsallis_ref),
                   "optax_err": abs(float(ox_loss) - tsallis_ref), "torch_err": None})
  print(_format_row(rows_out[-1]), flush=True)
  sh_ms, (sh_loss, _) = timed(loss_and_grad(ops.shannon_regularizer().value), *args)
  rows_out.append({"case": name, "op": "Shannon value", "hp": sh_ms, "optax": None, "torch": None,
                   "hp_err": abs(float(sh_loss) - shannon_ref), "optax_err": None,
                   "torch_err": None})
  print(_format_row(rows_out[-1]), flush=True)
  return grad_diff, tsallis_ref


# --- output ---------------------------------------------------------------------------------------


HEADER = ("| case | op | hpprompt ms | optax ms | torch ms | speed-up vs optax | speed-up vs torch "
          "| max abs err hpprompt | optax | torch |")


def _fmt(x, spec):
  return "—" if x is None else format(x, spec)


def _format_row(r):
  su_ox = None if r["optax"] is None else r["optax"] / r["hp"]
  su_th = None if r["torch"] is None else r["torch"] / r["hp"]
  return (f"| {r['case']} | {r['op']} | {_fmt(r['hp'], '.1f')} | {_fmt(r['optax'], '.1f')} "
          f"| {_fmt(r['torch'], '.1f')} | {_fmt(su_ox, '.1f')}x | {_fmt(su_th, '.1f')}x "
          f"| {_fmt(r['hp_err'], '.1e')} | {_fmt(r['optax_err'], '.1e')} "
          f"| {_fmt(r['torch_err'], '.1e')} |").replace("—x", "—")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
  flags = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  rng = np.random.default_rng(0)
  print(f"# hpprompt.ops benchmark{' (--quick)' if flags.quick else ''}: {platform.machine()} "
        f"{platform.processor() or ''}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
        f"({jax.default_backend()}), optax {optax.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)\n", flush=True)
  print(HEADER)
  print("|" + " --- |" * (HEADER.count("|") - 1))
  rows = []
  for name, z, mask in logit_cases(flags.quick, rng):
    bench_logits(name, z, mask, rows)
  grad_diff, loss = bench_loss(flags.quick, rng, rows)
  print(f"\nTimes: median of >= 2 calls after one warm-up (jitted, block_until_ready). Errors: "
        f"max abs difference from a float64 NumPy sort-rule reference of the same float32 inputs "
        f"(loss rows: |loss - float64 loss|, loss = {loss:.4g}). optax and torch get PIN's -1000 "
        f"fill instead of the mask. v2_v3 gradient, hpprompt vs optax: max abs difference "
        f"{grad_diff:.1e}.")


if __name__ == "__main__":
  main()
