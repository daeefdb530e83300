"""Non-finite training quantities stop a run; metrics are strict JSON (NaN and infinities: null)."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(ValueError):
  """A training quantity (loss, gradient norm, reward, parameters) became NaN or infinite."""


def check_finite(step: int, run=None, **quantities) -> None:
  """NonFiniteError naming the step and the first non-finite quantity (scalars or arrays); `run`
  (a `Run`, optional) names its last good checkpoint."""
  for name, value in quantities.items():
    if isinstance(value, (bool, np.bool_)):   # a precomputed "all finite"
      finite = bool(value)
    else:
      try:
        finite = bool(np.all(np.isfinite(np.asarray(value, np.float64))))
      except (TypeError, ValueError):
        continue
    if not finite:
      kept = "" if run is None else (f"; the last good checkpoint is step {run.saved_step}"
                                     if run.saved_step is not None else "; no checkpoint was kept")
      what = name.replace("_", " ")
      raise NonFiniteError(f"training stopped at step {step}: non-finite {what}{kept}; no prompt "
                           "of that step was recorded. Lower --learning_rate.")


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.asarray(leaves)) if leaves else jnp.asarray(True)


def all_finite(tree) -> bool:
  """Whether every floating-point array of a pytree is finite (one device reduction)."""
  return bool(_all_finite(tree))


def _finite_or_none(value: float):
  return value if math.isfinite(value) else None


def jsonable(value):
  """`value` as strict JSON: non-finite floats None, dataclasses dicts, others float or str."""
  if isinstance(value, float):
    return _finite_or_none(value)
  if dataclasses.is_dataclass(value):
    return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
  if isinstance(value, dict):
    return {k: jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, (str, int, float, bool)) or value is None:
    return value
  try:
    return _finite_or_none(float(value))
  except (TypeError, ValueError):
    return str(value)
