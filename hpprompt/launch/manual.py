"""The manual-prompt baseline as a run: the bundled manual prompts of a data set, the best on dev.

`run(ManualConfig(...))` scores every manual prompt of the data set (`hpprompt/data/
manual_prompts.tsv`, or `prompts`) on the dev set with the task LM, the launchers' CPU defaults
(SmolLM2-135M, contextual calibration), keeps the best by dev accuracy (ties: the first listed),
evaluates it on the test set and measures its perplexity. It writes a run directory that the report
reads like any other (`config.json`, `metrics.jsonl`: one record at step 0 with the best prompt's
dev accuracy, `prompts.csv`: every manual prompt by dev accuracy, `results.json`). Nothing is
trained, so there is no checkpoint: an interrupted manual run starts again (a few minutes, mostly
the test set).
"""
import csv
import dataclasses
import importlib.resources
import time

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import run_flags
from hpprompt.launch import validate
from hpprompt.tasks import user_data
from hpprompt.tasks import verbalizers
from hpprompt.training import sharding


def manual_prompts_file() -> str:
  return str(importlib.resources.files("hpprompt") / "data" / "manual_prompts.tsv")


def bundled_prompts(dataset: str, path: str | None = None) -> list[dict]:
  """The manual prompts of a data set, in file order: [{'prompt', 'source'}]."""
  with open(path or manual_prompts_file(), newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
  return [{"prompt": r["prompt"], "source": r["source"]} for r in rows if r["dataset"] == dataset]


def datasets_with_prompts(path: str | None = None) -> list[str]:
  with open(path or manual_prompts_file(), newline="", encoding="utf-8") as f:
    return list(dict.fromkeys(r["dataset"] for r in csv.DictReader(f, delimiter="\t",
                                                                   quoting=csv.QUOTE_NONE)))


@dataclasses.dataclass(frozen=True)
class ManualConfig(run_flags.RunSettings, user_data.DataFields):
  method: str = "manual"
  dataset: str = "sst-2"
  dataset_seed: int = 0
  data_dir: str | None = None
  task_lm: str = "smollm2"
  template: str | None = None
  verbalizers: tuple[str, ...] | None = None
  calibrate: bool = True               # as the agent launchers' CPU defaults
  prompts: tuple[str, ...] | None = None   # None: the bundled manual prompts of the data set
  steps: int = 1                       # nothing is trained (the run bookkeeping needs a count)
  workdir: str = "runs/manual"


def resolve_prompts(cfg: ManualConfig) -> tuple[str, ...]:
  if cfg.prompts is not None:
    return tuple(cfg.prompts)
  found = tuple(r["prompt"] for r in bundled_prompts(cfg.dataset))
  if not found:
    raise cli.FlagError("dataset", f"no bundled manual prompts for {cfg.dataset!r} "
                        f"(hpprompt/data/manual_prompts.tsv has {datasets_with_prompts()}); "
                        "give prompts.")
  return found


def _fewshot_config(cfg: ManualConfig) -> fewshot.FewShotConfig:
  return fewshot.FewShotConfig(dataset=cfg.dataset, dataset_seed=cfg.dataset_seed,
                               data_dir=cfg.data_dir, task_lm=cfg.task_lm, policy_lm=cfg.task_lm,
                               template=cfg.template, verbalizers=cfg.verbalizers, dtype=cfg.dtype,
                               calibrate=cfg.calibrate, selection="accuracy",
                               evaluate_test=cfg.evaluate_test, **user_data.fields(cfg))


def run(cfg: ManualConfig) -> dict:
  """Scores the manual prompts on dev, tests the best; writes the run directory."""
  prompts = resolve_prompts(cfg)
  cli.check_run_dir(cfg)
  few = _fewshot_config(cfg)
  spec, splits = fewshot.load_data(few)
  models = fewshot.load_models(few)
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(cfg.num_devices)
  task = fewshot.load_task(few, mesh, models, spec, splits)
  validate.task_context(task, validate.prompts(prompts, models[cfg.task_lm][1]), "prompts")
  run_ = cli.open_run(cfg, {**dataclasses.asdict(cfg), "prompts": list(prompts)})
  run_.prompts.keep = len(prompts)
  task.progress = run_.print
  run_.print(f"manual prompts on {cfg.dataset} (seed {cfg.dataset_seed}): task {cfg.task_lm}, "
             f"{len(prompts)} prompts, verbalizer tokens {verbalizers.describe(task.scorer)}")
  t0 = time.time()
  dev = task.accuracy(list(prompts), "dev")
  for prompt, acc in zip(prompts, dev):
    run_.prompts.add(prompt, float(acc), 0)
  best = run_.prompts.best
  run_.log(0, {"dev_acc": best["score"], "prompt": best["prompt"], "prompts_scored": len(prompts)})
  run_.print("dev accuracy: " + ", ".join(f"{p!r} {a:.4f}" for p, a in zip(prompts, dev)))
  results = {"method": "manual", "dataset": cfg.dataset, "steps": 0, "validation_metric": "dev_acc",
             "train_seconds": time.time() - t0, "best": best, "top_prompts": run_.prompts.records}
  run_.write_results(results)
  results.update(task.evaluate(best["prompt"]))
  fewshot.add_perplexity(results, few, models)
  if "test_accuracy" in results:
    run_.print(f"best manual prompt {best['prompt']!r}: dev {best['score']:.4f}, test "
               f"{results['test_accuracy']:.4f}, perplexity {results['best'].get('perplexity')}")
  run_.finish(results)
  return results
