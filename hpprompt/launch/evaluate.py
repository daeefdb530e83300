"""Accuracy of given prompts on a data set's split for a task LM, and their perplexity.

The manual-prompt baseline (e.g. " It was" with terrible/great) and prompts from papers are evaluated
here exactly like learned prompts.
"""
import dataclasses

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import validate
from hpprompt.metrics import perplexity
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.tasks import user_data
from hpprompt.training import sharding


@dataclasses.dataclass(frozen=True)
class EvalConfig(user_data.DataFields):
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
  """Scores the prompts; the results file is checked first and written before perplexity."""
  if not cfg.prompts:
    raise cli.FlagError("prompt", "give at least one prompt.")
  with cli.flag("split"):
    if cfg.split not in ("train", "dev", "test"):
      raise ValueError(f"must be train, dev or test, got {cfg.split!r}.")
  validate.output_file(cfg.output)
  few = fewshot.FewShotConfig(dataset=cfg.dataset, dataset_seed=cfg.dataset_seed,
                              data_dir=cfg.data_dir, task_lm=cfg.task_lm, policy_lm=cfg.task_lm,
                              template=cfg.template, verbalizers=cfg.verbalizers, dtype=cfg.dtype,
                              calibrate=cfg.calibrate, **user_data.fields(cfg))
  spec, splits = fewshot.load_data(few)
  if splits[cfg.split] is None:
    raise cli.FlagError("split", f"no {cfg.split} set for {cfg.dataset!r} (pass --data_dir; your "
                        "own data: a test file, or --shots).")
  models = {cfg.task_lm: _load(cfg.task_lm, "task_lm", cfg.dtype)}
  only = {k: (v if k == cfg.split else None) for k, v in splits.items()}
  task = fewshot.load_task(few, sharding.make_mesh(), models, spec, only)
  task.progress = lambda line: print(line, flush=True)
  longest = validate.prompts(tuple(cfg.prompts), models[cfg.task_lm][1])
  validate.task_context(task, longest, "prompt")
  ref_name = cfg.reference_lm
  if ref_name is None and isinstance(models[cfg.task_lm][0], CausalLM):
    ref_name = cfg.task_lm
  if ref_name is not None:       # loaded and checked before the evaluation
    ref, ref_tok = models.get(ref_name) or _load(ref_name, "reference_lm", cfg.dtype)
    with cli.flag("reference_lm"):
      if not isinstance(ref, CausalLM):
        raise ValueError(f"{ref_name!r} is not a causal LM; perplexity needs one.")
  acc = task.accuracy(list(cfg.prompts), cfg.split)
  results = [{"prompt": p, "accuracy": float(a), "perplexity": None, "split": cfg.split,
              "calibrated": cfg.calibrate,
              "examples": len(splits[cfg.split]), "task_lm": cfg.task_lm, "reference_lm": ref_name}
             for p, a in zip(cfg.prompts, acc)]
  _write(cfg.output, results)
  if ref_name is not None:
    ppl = perplexity.prompt_perplexity(ref, ref_tok, list(cfg.prompts),
                                       bos_token=hub.document_start(ref_name, ref_tok))
    for r, q in zip(results, ppl):
      r["perplexity"] = float(q)
    _write(cfg.output, results)
  return results


def _write(path: str | None, results: list[dict]) -> None:
  if path:
    validate.write_json(path, results, "output", shown=results)


def _load(name: str, flag_name: str, dtype: str):
  with cli.flag(flag_name):
    return hub.load_pretrained(name, dtype=fewshot._dtype(dtype))
