"""Accuracy of given prompts on a data set's split for a task LM, and their perplexity.

The manual-prompt baseline (e.g. " It was" with terrible/great) and prompts from papers are evaluated
here exactly like learned prompts.
"""
import dataclasses
import json
import os

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.metrics import perplexity
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.training import sharding


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  prompts: tuple[str, ...]
  dataset: str = "sst-2"
  dataset_seed: int = 0
  data_dir: str | None = None
  split: str = "test"
  task_lm: str = "smollm2"
  template: str | None = None
  verbalizers: tuple[str, ...] | None = None
  calibrate: bool = False
  reference_lm: str | None = None     # perplexity LM (default: the task LM if it is causal)
  dtype: str = "float32"
  output: str | None = None           # optional JSON file for the results


def run(cfg: EvalConfig) -> list[dict]:
  if not cfg.prompts:
    raise cli.FlagError("prompt", "give at least one prompt.")
  with cli.flag("split"):
    if cfg.split not in ("train", "dev", "test"):
      raise ValueError(f"must be train, dev or test, got {cfg.split!r}.")
  few = fewshot.FewShotConfig(dataset=cfg.dataset, dataset_seed=cfg.dataset_seed,
                              data_dir=cfg.data_dir, task_lm=cfg.task_lm, policy_lm=cfg.task_lm,
                              template=cfg.template, verbalizers=cfg.verbalizers, dtype=cfg.dtype,
                              calibrate=cfg.calibrate)
  spec, splits = fewshot.load_data(few)
  if splits[cfg.split] is None:
    raise cli.FlagError("split", f"no {cfg.split} set for {cfg.dataset!r} (pass --data_dir).")
  models = {cfg.task_lm: _load(cfg.task_lm, "task_lm", cfg.dtype)}
  task = fewshot.load_task(few, sharding.make_mesh(), models, spec, splits)
  task.progress = lambda line: print(line, flush=True)
  acc = task.accuracy(list(cfg.prompts), cfg.split)
  ref_name = cfg.reference_lm
  if ref_name is None and isinstance(models[cfg.task_lm][0], CausalLM):
    ref_name = cfg.task_lm
  ppl = [None] * len(cfg.prompts)
  if ref_name is not None:
    ref, ref_tok = models.get(ref_name) or _load(ref_name, "reference_lm", cfg.dtype)
    with cli.flag("reference_lm"):
      if not isinstance(ref, CausalLM):
        raise ValueError(f"{ref_name!r} is not a causal LM; perplexity needs one.")
    ppl = [float(x) for x in perplexity.prompt_perplexity(
        ref, ref_tok, list(cfg.prompts), bos_token=hub.document_start(ref_name, ref_tok))]
  results = [{"prompt": p, "accuracy": float(a), "perplexity": q, "split": cfg.split,
              "calibrated": cfg.calibrate,
              "examples": len(splits[cfg.split]), "task_lm": cfg.task_lm, "reference_lm": ref_name}
             for p, a, q in zip(cfg.prompts, acc, ppl)]
  if cfg.output:
    with cli.flag("output"):
      os.makedirs(os.path.dirname(os.path.abspath(cfg.output)), exist_ok=True)
      with open(cfg.output, "w") as f:
        json.dump(results, f, indent=2)
  return results


def _load(name: str, flag_name: str, dtype: str):
  with cli.flag(flag_name):
    return hub.load_pretrained(name, dtype=fewshot._dtype(dtype))
