"""FLOPs of a task LM's forward over real tokens, and the machine's matmul peak to read them against.

A Transformer's forward FLOPs over a sequence are a polynomial in its tokens: every token goes
through the same projections and MLP (`per_token`), every (query, key) pair that attention scores
costs QK^T and PV products (`per_pair`), and the head runs at the positions that are read
(`per_read`, e.g. the MLM transform and the verbalizer rows at `<mask>`). `ForwardFlops.of(model)`
gets the three coefficients by counting the matrix-multiply FLOPs (2 * M * N * K per `dot_general`)
in the model's traced forward, so it holds for every model family without a per-family formula.
Elementwise work (norms, activations, softmax) is not counted; as is usual for model FLOPs, only
matrix multiplies are. Padding is never counted: the FLOPs of a reward are those of its real
tokens, so FLOPs / seconds is the rate of useful work, whatever the scorer pads or packs.
"""
import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.models.base import verbalizer_logits


def _sub_jaxprs(params: dict):
  for value in params.values():
    values = value if isinstance(value, (tuple, list)) else (value,)
    for v in values:
      if isinstance(v, jax.extend.core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax.extend.core.Jaxpr):
        yield v


def jaxpr_dot_flops(jaxpr) -> int:
  """2 * M * N * K summed over the `dot_general`s of a jaxpr (scans times their length)."""
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      out = eqn.outvars[0].aval.shape
      total += 2 * math.prod(out) * math.prod(lhs[i] for i in contract)
    elif name == "while":
      if any(jaxpr_dot_flops(j) for j in _sub_jaxprs(eqn.params)):
        raise ValueError("cannot count the FLOPs of matrix multiplies inside a while loop.")
    elif name == "cond":
      total += max(jaxpr_dot_flops(b.jaxpr) for b in eqn.params["branches"])
    else:
      inner = sum(jaxpr_dot_flops(j) for j in _sub_jaxprs(eqn.params))
      total += inner * (eqn.params["length"] if name == "scan" else 1)
  return total


def dot_flops(fn, *args) -> int:
  """Matrix-multiply FLOPs of `fn(*args)` (traced, not run)."""
  return jaxpr_dot_flops(jax.make_jaxpr(fn)(*args).jaxpr)


@dataclasses.dataclass(frozen=True)
class ForwardFlops:
  """FLOPs = per_token * tokens + per_pair * attention pairs + per_read * read positions."""
  per_token: int
  per_pair: int
  per_read: int = 0

  def __call__(self, tokens: int, pairs: int, reads: int = 0) -> int:
    return self.per_token * tokens + self.per_pair * pairs + self.per_read * reads

  def sequences(self, lengths, *, causal: bool, reads: bool = True) -> int:
    """Whole sequences, each on its own (bidirectional: n^2 pairs, causal: n (n + 1) / 2), each read
    once when `reads`."""
    n = np.asarray(lengths, np.int64)
    pairs = n * (n + 1) // 2 if causal else n * n
    return self(int(n.sum()), int(pairs.sum()), len(n) if reads else 0)

  def continuations(self, prefix_lengths, cont_lengths) -> int:
    """Every continuation (causal) after every cached prefix, each read once: the prefixes' own
    FLOPs are not included (they are encoded once, see `sequences`)."""
    s = np.asarray(prefix_lengths, np.int64)[:, None]
    t = np.asarray(cont_lengths, np.int64)[None, :]
    pairs = t * s + t * (t + 1) // 2
    t = np.broadcast_to(t, pairs.shape)
    return self(int(t.sum()), int(pairs.sum()), pairs.size)

  @classmethod
  def of(cls, model: nnx.Module, verbalizer_ids=None) -> "ForwardFlops":
    """Coefficients of `model` (a causal or masked LM) from its traced forward at 1, 2 and 3 tokens
    (checked to be a polynomial a * T + b * T^2), and of the verbalizer head at one position."""
    graphdef, state = nnx.split(model)

    def forward(state, ids):
      return nnx.merge(graphdef, state)(ids, compute_logits=False).hidden

    f = [dot_flops(forward, state, jnp.zeros((1, t), jnp.int32)) for t in (1, 2, 3)]
    per_pair = (f[1] - 2 * f[0]) // 2
    per_token = f[0] - per_pair
    if 3 * per_token + 9 * per_pair != f[2]:
      raise ValueError(f"forward FLOPs {f} at 1, 2, 3 tokens are not a * T + b * T^2.")
    per_read = 0
    if verbalizer_ids is not None:
      dim = jax.eval_shape(forward, state, jnp.zeros((1, 1), jnp.int32)).shape[-1]

      def head(state, h):
        return verbalizer_logits(nnx.merge(graphdef, state), h, jnp.asarray(verbalizer_ids))
      per_read = dot_flops(head, state, jnp.zeros((1, dim), jnp.float32))
    return cls(per_token, per_pair, per_read)


def matmul_peak(size: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
  """Measured FLOP/s of one large jitted matmul [size, size] @ [size, size] (best of `repeats`)."""
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  b = jax.random.normal(jax.random.key(1), (size, size), dtype)
  mm = jax.jit(jnp.matmul)
  mm(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    mm(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * size ** 3 / best
