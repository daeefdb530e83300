"""absl flags that every training launcher shares: template, steps, run directory, cadence, devices,
and the prompt agent's settings.

A launcher calls `define(defaults)` with its config's defaults, then passes `values()` into its
config (the field names equal the flag names). `--tensorboard` is passed on only to configs that
have a `tensorboard` field. Agent launchers also call `define_agent()` and build their config's
`agent` overrides with `agent_values(...)`.
"""
import dataclasses

from absl import flags

@dataclasses.dataclass(frozen=True)
class RunSettings:
  """The run settings every training launcher's config has (field names = flag names); a config
  subclasses it and re-declares the defaults it changes."""
  steps: int = 200
  workdir: str = "runs/run"
  resume: bool = False
  seed: int = 0
  eval_every: int = 10
  log_every: int = 1
  checkpoint_every: int = 50
  dtype: str = "float32"
  num_devices: int | None = None
  tensorboard: bool = False            # TensorBoard event files beside metrics.jsonl
  evaluate_test: bool = True
  # Bookkeeping kept in config.json, not flags: the run's name in reports (default: its method;
  # e.g. the results grid's 'infoprompt_released') and free-form notes (e.g. the grid's budget
  # rule). None by default, so that runs written before these fields existed still --resume.
  label: str | None = None
  notes: dict | None = None


FIELDS = ("template", "verbalizers", "steps", "workdir", "resume", "seed", "eval_every",
          "log_every", "checkpoint_every", "dtype", "num_devices", "evaluate_test", "label")
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
  flags.DEFINE_bool("evaluate_test", defaults.evaluate_test,
                    "Evaluate the best prompt on the test split at the end (--noevaluate_test: "
                    "train and select only; evaluate later with the evaluation launcher).")
  flags.DEFINE_string("label", None, "The run's name in reports (default: its method), e.g. "
                      "'pin k=1000' for one arm of an ablation.")
  _defaults[:] = [defaults]


def values() -> dict:
  """The shared flags' values as config fields (verbalizers as a tuple)."""
  out = {name: getattr(flags.FLAGS, name) for name in FIELDS}
  out.update({name: getattr(flags.FLAGS, name) for name in _OPTIONAL
              if _defaults and hasattr(_defaults[0], name)})
  out["verbalizers"] = tuple(out["verbalizers"]) if out["verbalizers"] else None
  return out


# Agent settings every agent launcher exposes (None: the preset's / CPU default's value).
AGENT_FIELDS = ("prompt_length", "prompts_per_step", "loss", "filter_top_k", "sampling_top_k",
                "replay_batch", "replay_capacity", "learning_rate", "mlp_hidden", "init_prompt")


def define_agent(prompt_length_help: str = "Prompt tokens (preset/CPU default if unset).",
                 learning_rate_help: str = "Adam learning rate.") -> None:
  flags.DEFINE_integer("prompt_length", None, prompt_length_help)
  flags.DEFINE_integer("prompts_per_step", None, "Prompts sampled per step.")
  flags.DEFINE_string("loss", None, "Soft-Q loss: v1, v2, v3, v2_v3, td (preset default if unset).")
  flags.DEFINE_integer("filter_top_k", None, "Ignorable-token filter k (PIN); 0 disables it.")
  flags.DEFINE_integer("sampling_top_k", None, "Top-k sampling of the policy (RLPrompt); 0 disables.")
  flags.DEFINE_integer("replay_batch", None, "Replay batch (PIN).")
  flags.DEFINE_integer("replay_capacity", None, "Replay buffer size (PIN).")
  flags.DEFINE_float("learning_rate", None, learning_rate_help)
  flags.DEFINE_integer("mlp_hidden", None, "Hidden width of the policy's MLP head.")
  flags.DEFINE_string("source_token", None, "Token the prompt follows (default: the policy's BOS).")
  flags.DEFINE_string("init_prompt", None, "Starting prompt, e.g. 'It was': the policy is warmed "
                      "up to it and it is the best prompt until a better one scores higher on dev "
                      "(exactly --prompt_length tokens of the policy tokenizer).")


def agent_values(base: dict, names=AGENT_FIELDS) -> dict:
  """`base` (the CPU overrides, or {} with --paper) with each agent flag in `names` that was set;
  a top-k of 0 disables it (None)."""
  out = dict(base)
  for name in names:
    value = getattr(flags.FLAGS, name)
    if value is not None:
      out[name] = None if name.endswith("top_k") and value == 0 else value
  return out
