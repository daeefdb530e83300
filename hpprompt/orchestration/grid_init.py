"""The results grid's `pin_init` arm: PIN started from the best manual prompt (`--init_prompt`).

The starting prompt of cell `<dataset>/pin_init_seed<k>` is the grid's `manual` method's choice for
that data set and split (the bundled manual prompt with the best dev accuracy, ties: the first
listed): read from the finished manual cell beside it when there is one, else the same selection
computed here (so that a shard of the grid never waits for another). The prompt length is the
prompt's token count under the policy tokenizer (e.g. 6 for "In summary, the movie is" with
SmolLM2); every other setting is the grid's PIN cell's. Both are written into the cell's
config.json, so the cell resumes like any run.
"""
import dataclasses
import json
import os

import numpy as np

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import manual
from hpprompt.models import hub
from hpprompt.training import sharding


def _finished_choice(manual_dir: str) -> str | None:
  try:
    with open(os.path.join(manual_dir, "results.json")) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return None
  done = isinstance(results, dict) and any(k.startswith("test_") for k in results)
  return results.get("best", {}).get("prompt") if done else None


def manual_choice(manual_cfg: manual.ManualConfig) -> str:
  """The manual method's dev selection for this data set and split (`manual.run`'s rule)."""
  found = _finished_choice(manual_cfg.workdir)
  if found is not None:
    return found
  prompts = manual.resolve_prompts(manual_cfg)
  few = manual._fewshot_config(manual_cfg)  # noqa: SLF001  (the manual method's own settings)
  spec, splits = fewshot.load_data(few)
  models = fewshot.load_models(few)
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(manual_cfg.num_devices)
  task = fewshot.load_task(few, mesh, models, spec, splits)
  dev = task.accuracy(list(prompts), "dev")
  return prompts[int(np.argmax(dev))]       # the first of the best, as BestPrompts keeps it


def resolve(config: fewshot.FewShotConfig, manual_cfg: manual.ManualConfig
            ) -> fewshot.FewShotConfig:
  """The pin_init cell's launcher config: the manual choice as starting prompt, its length."""
  prompt = manual_choice(manual_cfg)
  dtype = fewshot._dtype(config.dtype)  # noqa: SLF001
  with cli.flag("policy_lm"):
    _, tokenizer = hub.load_pretrained(config.policy_lm, dtype=dtype)
  length = len(tokenizer.encode(prompt))
  return dataclasses.replace(config, agent={**config.agent, "init_prompt": prompt,
                                            "prompt_length": length})
