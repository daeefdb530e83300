"""Up-front checks of every setting, the same rules for every launcher (agent, baselines, eval).

Each check raises `cli.FlagError` naming the flag to change, before models load or training starts
wherever the inputs allow: numbers (finite, in range), verbalizers against the data set's classes,
splits (empty, missing test set), context length (prompt + template + the longest input against the
policy's and the task LM's positions), prompts, the run directory and output files.
"""
import dataclasses
import json
import math
import os
import socket
import urllib.parse

from absl import logging

from hpprompt.launch import cli
from hpprompt.tasks import data
from hpprompt.tasks import templates
from hpprompt.training import writers

# Fields that must be finite and > 0 where a config has them (agent and baseline configs).
POSITIVE = ("learning_rate", "grad_clip", "temperature", "init_scale")
UNIT = ("polyak_rate", "discount")      # in [0, 1]


def numbers(cfg, rename: dict | None = None) -> None:
  """Every float field of a (frozen dataclass) config finite; learning rates etc. > 0."""
  rename = rename or {}
  for field in dataclasses.fields(cfg):
    value = getattr(cfg, field.name)
    name = rename.get(field.name, field.name)
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
      if isinstance(v, float) and not math.isfinite(v):
        raise cli.FlagError(name, f"must be a finite number, got {v}.")
    if field.name in POSITIVE and isinstance(value, (int, float)) and not value > 0:
      raise cli.FlagError(name, f"must be > 0, got {value}.")
    if field.name in UNIT and isinstance(value, (int, float)) and not 0 <= value <= 1:
      raise cli.FlagError(name, f"must be in [0, 1], got {value}.")


def in_range(name: str, value: float, low: float, high: float) -> None:
  if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
    raise cli.FlagError(name, f"must be in [{low}, {high}], got {value}.")


def reward_ranges(agent_cfg) -> None:
  for name in ("reward_old_range", "reward_new_range"):
    low, high = getattr(agent_cfg, name)
    if not low < high:
      raise cli.FlagError(name, f"must be (low, high) with low < high, got {(low, high)}.")


def verbalizers(spec: data.DatasetSpec, words: tuple[str, ...] | None) -> None:
  """One non-empty, distinct verbalizer per class of the data set."""
  if words is None:
    return
  if len(words) != spec.num_classes:
    raise cli.FlagError("verbalizers", f"{spec.name} has {spec.num_classes} classes, got "
                        f"{len(words)} verbalizers {list(words)}; give one per class (in label "
                        f"order, e.g. {','.join(spec.verbalizers)}).")
  if any(not w.strip() for w in words):
    raise cli.FlagError("verbalizers", f"empty verbalizer in {list(words)}.")
  if len(set(words)) != len(words):
    raise cli.FlagError("verbalizers", f"repeated verbalizers {list(words)}.")


def verbalizer_tokens(tokenizer, words: tuple[str, ...], flag_name: str) -> None:
  """Each verbalizer one token of the task tokenizer (named flag: --verbalizers or --task_lm)."""
  with cli.flag(flag_name):
    templates.verbalizer_ids(tokenizer, words)


def test_note(splits: dict, dataset: str, evaluate_test: bool) -> str | None:
  """A line to print when there is no test split (no test accuracy will be reported)."""
  if evaluate_test and splits.get("test") is None:
    return (f"note: {dataset} has no test split here, so no test accuracy will be reported "
            "(pass --data_dir with a test.tsv to get one).")
  return None


def _limit(scorer) -> int | None:
  return getattr(scorer, "max_length", None) or scorer.max_positions


def longest_input(scorer, examples: list) -> tuple[int, int]:
  """(tokens, index) of the longest example rendered with the template and an empty prompt."""
  mask = getattr(scorer, "mask_token", None) or "<mask>"
  texts = [scorer.template.render(e.text, "", e.text_b, mask_token=mask) for e in examples]
  lengths = [len(s) for s in scorer.tokenizer.encode_batch(texts, add_special_tokens=True)]
  i = max(range(len(lengths)), key=lengths.__getitem__)
  return lengths[i], i


def task_context(task, prompt_tokens: int, flag_name: str) -> None:
  """prompt + template + the longest input of every split within the task LM's positions."""
  limit = _limit(task.scorer)
  if not limit or getattr(task, "truncate", False):   # --truncate: cut as RLPrompt does
    return
  for split in ("train", "dev", "test"):
    examples = getattr(task, split)
    if not examples:
      continue
    tokens, index = longest_input(task.scorer, examples)
    if tokens + prompt_tokens > limit:
      raise cli.FlagError(flag_name, f"{split} example {index + 1} with the template is {tokens} "
                          f"tokens; with a {prompt_tokens}-token prompt that exceeds the task LM's "
                          f"{limit} positions. Use a shorter prompt or template, or a task LM with "
                          "a longer context (or --truncate, as RLPrompt does).")


def policy_context(lm, prompt_length: int) -> None:
  """The source token and the prompt within the policy LM's positions."""
  limit = getattr(getattr(lm, "config", None), "max_positions", None)
  if limit and 1 + prompt_length > limit:
    raise cli.FlagError("prompt_length", f"{prompt_length} tokens after the source token exceed "
                        f"the policy LM's {limit} positions; use at most {limit - 1}.")


def policy_vocab(agent_cfg, vocab: int) -> None:
  for name in ("filter_top_k", "sampling_top_k"):
    k = getattr(agent_cfg, name)
    if k is not None and k > vocab:
      raise cli.FlagError(name, f"{k} exceeds the policy's vocabulary of {vocab} tokens; use at "
                          f"most {vocab} (0 disables it).")


def prompts(values: tuple[str, ...], tokenizer) -> int:
  """Prompts usable as text; returns the longest one's length in task tokens."""
  if not values:
    raise cli.FlagError("prompt", "give at least one prompt.")
  longest = 0
  for i, p in enumerate(values, 1):
    try:
      p.encode("utf-8")
    except UnicodeEncodeError:
      raise cli.FlagError("prompt", f"prompt {i} is not valid UTF-8 text.") from None
    longest = max(longest, len(tokenizer.encode(p)))
  return longest


def _existing_parent(path: str) -> str:
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  return parent


def output_file(path: str | None, flag_name: str = "output") -> None:
  """A file that can be written (checked before the work whose results it will hold): not a
  directory, under a writable directory with free space (a probe file is written and removed)."""
  if not path:
    return
  if os.path.isdir(path) or path.endswith(("/", os.sep)):
    raise cli.FlagError(flag_name, f"{path} is a directory; give a file name such as "
                        f"{os.path.join(path, 'results.json')}.")
  parent = _existing_parent(path)
  if not os.path.isdir(parent):
    raise cli.FlagError(flag_name, f"{parent} is a file, so {path} cannot be created.")
  target = path if os.path.exists(path) else parent
  if not os.access(target, os.W_OK) or not os.access(parent, os.W_OK | os.X_OK):
    raise cli.FlagError(flag_name, f"{target if not os.access(target, os.W_OK) else parent} is "
                        "not writable.")
  probe = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.probe")
  try:
    with open(probe, "wb") as f:
      f.write(b"\0" * 4096)
      f.flush()
      os.fsync(f.fileno())
  except OSError as e:
    raise cli.FlagError(flag_name, f"cannot write {path} ({cli.one_line(e)}).") from e
  finally:
    if os.path.exists(probe):
      os.remove(probe)


def write_json(path: str, value, flag_name: str = "output", shown=None) -> None:
  """Writes JSON atomically (`writers.write_file`: never a partial or 0-byte file, a symbolic
  link replaced, not followed).
  On failure, prints `shown` (the results, so that the work is not lost) to stdout and raises a
  FlagError naming the flag."""
  try:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    writers.write_file(path, json.dumps(value, indent=2), sync=True)
  except OSError as e:
    if shown is not None:
      print(json.dumps(shown, indent=1, default=str), flush=True)
    raise cli.FlagError(flag_name, f"cannot write {path} ({cli.one_line(e)}); the results are "
                        "printed above.") from e


def directory(path: str | None, flag_name: str) -> None:
  """A directory that exists or can be created (not a file, not under a file)."""
  if not path:
    return
  if os.path.exists(path) and not os.path.isdir(path):
    raise cli.FlagError(flag_name, f"{path} is a file, not a directory.")
  parent = _existing_parent(path)
  if not os.path.isdir(parent):
    raise cli.FlagError(flag_name, f"{parent} is a file, so {path} cannot be created.")


def non_negative(cfg, names) -> None:
  """FlagError naming the first of cfg's integer fields `names` that is < 0."""
  for name in names:
    if getattr(cfg, name) < 0:
      raise cli.FlagError(name, f"must be >= 0 (0: all), got {getattr(cfg, name)}.")


def text(flag_name: str, value: str | None) -> None:
  """Text from the command line that is valid UTF-8 (not undecodable bytes)."""
  try:
    (value or "").encode("utf-8")
  except UnicodeEncodeError:
    raise cli.FlagError(flag_name, "is not valid UTF-8 text.") from None


def tfds_reachable(name: str, data_dir: str | None, timeout: float = 5.0) -> None:
  """A tensorflow-datasets set that is not prepared under data_dir must be downloadable: each host
  it downloads from answers within `timeout` s (offline: one line now, not minutes of retries)."""
  tfds = data._import_tfds()  # noqa: SLF001
  level = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)     # tfds's notes on half-written folders: not a 2nd line
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
      return
  finally:
    logging.set_verbosity(level)
  urls = [getattr(builder.builder_config, "data_url", None), *(builder.url_infos or {})]
  for host in sorted({urllib.parse.urlparse(u).hostname for u in urls if u} - {None}):
    try:
      socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as e:
      raise ValueError(f"{name} is not prepared under {builder.data_dir} and its download host "
                       f"{host} cannot be reached ({cli.one_line(e)}); connect to the network or "
                       "pass --data_dir with a prepared copy.") from e
