"""absl flags that every training launcher shares: template, steps, run directory, cadence, devices.

A launcher calls `define(defaults)` with its config's defaults, then passes `values()` into its
config (the field names equal the flag names). `--tensorboard` is passed on only to configs that
have a `tensorboard` field.
"""
from absl import flags

FIELDS = ("template", "verbalizers", "steps", "workdir", "resume", "seed", "eval_every",
          "log_every", "checkpoint_every", "dtype", "num_devices")
_OPTIONAL = ("tensorboard",)
_defaults = []


def define(defaults) -> None:
  flags.DEFINE_string("template", None,
                      "Template with {sentence_1} and {prompt} (+ <mask> for MLMs).")
  flags.DEFINE_list("verbalizers", None, "Comma-separated verbalizer tokens, one per class; a "
                    "leading space as 'Ġbad' or \"' bad'\" (a bare bad has none).")
  flags.DEFINE_integer("steps", defaults.steps, "Training steps.")
  flags.DEFINE_string("workdir", defaults.workdir,
                      "Run directory (config, metrics, checkpoints, prompts).")
  flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its last checkpoint.")
  flags.DEFINE_integer("seed", defaults.seed, "Random seed of the run.")
  flags.DEFINE_integer("eval_every", defaults.eval_every, "Validate every N steps.")
  flags.DEFINE_integer("log_every", defaults.log_every, "Progress line every N steps.")
  flags.DEFINE_integer("checkpoint_every", defaults.checkpoint_every, "Checkpoint every N steps.")
  flags.DEFINE_enum("dtype", defaults.dtype, ["float32", "bfloat16"], "Parameter dtype of the LMs.")
  flags.DEFINE_integer("num_devices", None, "Devices to shard over (default: all).")
  flags.DEFINE_bool("tensorboard", getattr(defaults, "tensorboard", False),
                    "Also write TensorBoard event files into --workdir (needs tensorboardX).")
  _defaults[:] = [defaults]


def values() -> dict:
  """The shared flags' values as config fields (verbalizers as a tuple)."""
  out = {name: getattr(flags.FLAGS, name) for name in FIELDS}
  out.update({name: getattr(flags.FLAGS, name) for name in _OPTIONAL
              if _defaults and hasattr(_defaults[0], name)})
  out["verbalizers"] = tuple(out["verbalizers"]) if out["verbalizers"] else None
  return out
