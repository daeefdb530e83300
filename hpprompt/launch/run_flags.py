"""absl flags that every training launcher shares: template, steps, run directory, cadence, devices,
and the prompt agent's settings.

A launcher calls `define(defaults)` with its config's defaults, then passes `values()` into its
config (the field names equal the flag names). `--tensorboard` is passed on only to configs that
have a `tensorboard` field. Agent launchers also call `define_agent()` and build their config's
`agent` overrides with `agent_values(...)`.
"""
import dataclasses

from absl import flags

from hpprompt.agent.config import PRESETS
from hpprompt.launch import cli

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
MAX_SEED = 2**32 - 1                 # what NumPy's and JAX's generators take without overflow
MAX_REPLAY = 10_000_000              # replay slots (PIN: 64,000); each holds a prompt and reward
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
  flags.DEFINE_integer("seed", defaults.seed, "Random seed of the run.", lower_bound=0,
                       upper_bound=MAX_SEED)
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


def define_data() -> None:
  """The flags of your own classification data (hpprompt.tasks.user_data), every classification
  launcher; `--dataset=PATH` or `--dataset=tfds:NAME[/CONFIG]` turns them on."""
  flags.DEFINE_list("classes", None, "Your own data: class names in label order (default: the "
                    "data's; integer labels index them).")
  flags.DEFINE_integer("shots", None, "Your own data: draw K examples per class for train and K "
                       "for dev from the training file with --dataset_seed (LM-BFF's k-shot "
                       "protocol); test: the test file, else dev file, else the rest.")
  flags.DEFINE_string("text_key", None, "Your own data: text column (default text or sentence); "
                      "'a,b' for sentence pairs (default text_b when present).")
  flags.DEFINE_string("label_key", None, "Your own data: label column (default label).")


def data_values() -> dict:
  """The user-data flags' values as config fields (classes as a tuple)."""
  f = flags.FLAGS
  return {"classes": tuple(f.classes) if f.classes else None, "shots": f.shots,
          "text_key": f.text_key, "label_key": f.label_key}


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
  flags.DEFINE_integer("replay_capacity", None, "Replay buffer size (PIN).", lower_bound=1,
                       upper_bound=MAX_REPLAY)
  flags.DEFINE_float("learning_rate", None, learning_rate_help)
  flags.DEFINE_integer("mlp_hidden", None, "Hidden width of the policy's MLP head.")
  flags.DEFINE_string("source_token", None, "Token the prompt follows (default: the policy's BOS).")
  flags.DEFINE_string("init_prompt", None, "Starting prompt, e.g. 'It was': the policy is warmed "
                      "up to it and it is the best prompt until a better one scores higher on dev "
                      "(exactly --prompt_length tokens of the policy tokenizer).")


# A top-k mechanism a method's preset leaves off: giving it a k on the command line would silently
# turn the method into another one (RLPrompt with PIN's filter is `rlprompt-fluency`).
_FOREIGN = {"filter_top_k": "PIN's ignorable-token filter", "sampling_top_k": "top-k sampling"}


def check_foreign(method: str) -> None:
  """FlagError for a top-k flag given explicitly (and > 0) that `method`'s preset does not use."""
  if method not in PRESETS:
    return       # an unknown method is refused with its own line
  for name, what in _FOREIGN.items():
    if flags.FLAGS[name].present and getattr(flags.FLAGS, name) and (
        getattr(PRESETS[method], name) is None):
      raise cli.FlagError(name, f"--method={method} does not use {what}; drop --{name} (or "
                          f"pick a method that uses it).")


def agent_values(base: dict, names=AGENT_FIELDS, method: str | None = None) -> dict:
  """`base` (the CPU overrides, or {} with --paper) with each agent flag in `names` that was set;
  a top-k of 0 disables it (None). With `method`, a top-k flag it does not use is refused."""
  if method is not None:
    check_foreign(method)
  out = dict(base)
  for name in names:
    value = getattr(flags.FLAGS, name)
    if value is not None:
      out[name] = None if name.endswith("top_k") and value == 0 else value
  return out
