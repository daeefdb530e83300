"""Continuous-prompt baselines on classification: soft prompt tuning, InfoPrompt, PEZ.

`run(BaselineConfig(...))` is what `experiments/soft_prompt.py` calls; Colab users call it directly.
The conventions are those of `hpprompt.launch.fewshot`: the same data, task LM, template and
verbalizer resolution (`fewshot.load_data`, `fewshot.load_task`), the same run directory
(`training.run.Run`: config.json, metrics.jsonl, checkpoints, prompts.csv, results.json), and the
same Ctrl-C behaviour (`training.run.stop_on_sigint`: finish the step, save, stop; --resume
continues exactly). Every failure caused by a setting is raised as `cli.FlagError` naming the
setting.

Data: the few-shot sets come from `data.load_few_shot`. The tensorflow-datasets sets (glue/sst2,
glue/rte, glue/mrpc, glue/cola, ...) take `k_per_class` training and `k_per_class` validation
examples per class (disjoint draws from 'train' with `dataset_seed`; InfoPrompt's 64 / 256-sample
setting is k = 32 / 128 for binary tasks), and the full 'validation' split is the test set (GLUE's
test labels are hidden). CoLA is scored by Matthews correlation (`hpprompt.metrics.classification`),
the others by accuracy; both are always reported.

The defaults are CPU-sized: SmolLM2-135M on SST-2 16-shot, prompt length 5, the full training set
(32) per step, 60 steps: 1.5-3 minutes of training plus 2-4 minutes for the 1,821 test examples on a
shared 2-core CPU (docs/baselines_results.md).

PEZ's hard prompt is tested as a string: its dev accuracy through `ClassificationTask.accuracy`, its
test accuracy from the tokens the string encodes to, fed through the embedding path. Those logits
equal the string scorer's (tested), but the test inputs are scored in length-sorted chunks and not
cached all at once. `string_test=True` uses `ClassificationTask`'s scorer for the test set too.
"""
import dataclasses
import functools
import json
import time

import jax.numpy as jnp
import numpy as np

from hpprompt import gradient
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import paper
from hpprompt.launch import run_flags
from hpprompt.launch import validate
from hpprompt.metrics import classification
from hpprompt.metrics import perplexity
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.tasks import data
from hpprompt.tasks import embedding_task
from hpprompt.tasks import user_data
from hpprompt.tasks import verbalizers
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.training import sharding
from hpprompt.training.progress import ProgressLine
from hpprompt.training.run import Interrupted
from hpprompt.training.run import Run
from hpprompt.training.run import all_finite
from hpprompt.training.run import check_finite
from hpprompt.training.run import stop_on_sigint

__all__ = ("BaselineConfig", "Interrupted", "build", "run", "scores", "train")

MCC_DATASETS = ("glue/cola",)


@dataclasses.dataclass(frozen=True)
class BaselineConfig(run_flags.RunSettings, user_data.DataFields):
  method: str = "soft"                # soft | infoprompt | pez
  dataset: str = "sst-2"
  dataset_seed: int = 0
  data_dir: str | None = None
  k_per_class: int | None = None      # tfds sets: train (and dev) examples per class
  task_lm: str = "smollm2"
  template: str | None = None         # default: the data set's (MLM or causal) template
  verbalizers: tuple[str, ...] | None = None
  prompt_length: int = 5
  init: str = "vocab"                 # uniform | vocab | class
  learning_rate: float | None = None  # None: the method's default
  options: dict = dataclasses.field(default_factory=dict)   # other fields of the method's config
  steps: int = 60
  epochs: int | None = None           # if set, steps = epochs x ceil(train examples / batch_size)
  batch_size: int = 32
  eval_every: int = 5
  checkpoint_every: int = 20
  target_train_acc: float = 0.9       # report the first step whose training batch reaches it
  workdir: str = "runs/soft_prompt"
  string_test: bool = False           # PEZ: test the string with ClassificationTask's scorer


def scores(logits: np.ndarray, labels) -> dict:
  """Accuracy and Matthews correlation of argmax predictions (RLPrompt's / GLUE's evaluators)."""
  preds = np.argmax(logits, -1)
  return {"accuracy": classification.accuracy(preds, labels),
          "mcc": classification.matthews_corrcoef(preds, labels)}


# ---- building ------------------------------------------------------------------------------------

def method_config(cfg: BaselineConfig):
  with cli.flag("method"):
    if cfg.method not in gradient.METHODS:
      raise ValueError(f"unknown method {cfg.method!r}; choose one of {sorted(gradient.METHODS)}.")
  config_class = gradient.METHODS[cfg.method].config_class
  fields = {f.name for f in dataclasses.fields(config_class)}
  for key in cfg.options:
    if key not in fields:
      raise cli.FlagError(key, f"not a {cfg.method} setting; known: {sorted(fields)}.")
  values = {"prompt_length": cfg.prompt_length, "init": cfg.init, "schedule_steps": cfg.steps,
            **cfg.options}
  if cfg.learning_rate is not None:
    values["learning_rate"] = cfg.learning_rate
  try:
    method_cfg = config_class(**values)
  except (TypeError, ValueError) as e:
    name = next((k for k in values if k in str(e)), "method")
    raise cli.FlagError(name, cli.one_line(e)) from e
  for name, message in method_cfg.problems():
    raise cli.FlagError(name, message)
  validate.numbers(method_cfg)
  return method_cfg


def _tfds_splits(cfg: BaselineConfig) -> dict:
  with cli.flag("k_per_class"):
    if cfg.k_per_class is None or cfg.k_per_class < 1:
      raise ValueError(f"{cfg.dataset} is a tensorflow-datasets set: give k_per_class >= 1 "
                       f"(got {cfg.k_per_class}).")
  with cli.flag("data_dir" if cfg.data_dir else "dataset"):
    validate.tfds_reachable(cfg.dataset, cfg.data_dir)     # offline: fail fast
    try:
      pool = data.load_tfds(cfg.dataset, "train", data_dir=cfg.data_dir,
                            k_per_class=2 * cfg.k_per_class, seed=cfg.dataset_seed)
      test = data.load_tfds(cfg.dataset, "validation", data_dir=cfg.data_dir, download=False)
    except cli.USER_ERRORS:
      raise
    except Exception as e:  # noqa: BLE001  (tfds raises many kinds; one clear line)
      raise ValueError(f"could not load {cfg.dataset} ({type(e).__name__}: {e}).") from e
  k = cfg.k_per_class   # per_class_sample orders by label: 2k per label, first k train, next k dev
  train = [e for i in range(0, len(pool), 2 * k) for e in pool[i:i + k]]
  dev = [e for i in range(0, len(pool), 2 * k) for e in pool[i + k:i + 2 * k]]
  return {"train": train, "dev": dev, "test": test}


def load_data(cfg: BaselineConfig) -> tuple[data.DatasetSpec, dict]:
  if user_data.is_user(cfg.dataset) and cfg.k_per_class is not None:
    raise cli.FlagError("k_per_class", "only for the named tfds sets; with your own data "
                        "use --shots.")
  if user_data.is_user(cfg.dataset):
    return fewshot.load_data(cfg)
  with cli.flag("dataset"):
    spec = data.get_spec(cfg.dataset)
  if cfg.dataset.startswith("glue/") or "_" in cfg.dataset:
    fewshot.refuse_user_fields(cfg)
    return spec, _tfds_splits(cfg)
  if cfg.k_per_class is not None:
    raise cli.FlagError("k_per_class", f"only for tensorflow-datasets sets; {cfg.dataset!r} is a "
                        "few-shot set with fixed splits.")
  return fewshot.load_data(cfg)


def load_model(cfg: BaselineConfig):
  with cli.flag("dtype"):
    if cfg.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"must be float32 or bfloat16, got {cfg.dtype!r}.")
  with cli.flag("task_lm"):
    return hub.load_pretrained(cfg.task_lm, dtype=getattr(jnp, cfg.dtype))


def resolve_epochs(cfg: BaselineConfig) -> BaselineConfig:
  """`cfg` with `steps` = epochs x batches per epoch when `epochs` is set (InfoPrompt's 30)."""
  if cfg.epochs is None:
    return cfg
  with cli.flag("epochs"):
    if cfg.epochs < 1:
      raise ValueError(f"must be >= 1, got {cfg.epochs}.")
  _, splits = load_data(cfg)
  n = len(splits["train"])
  return dataclasses.replace(cfg, steps=cfg.epochs * -(-n // min(cfg.batch_size, n)))


def build(cfg: BaselineConfig):
  """(method, embedding task, string-prompt task) from a configuration."""
  cli.check_positive(cfg, cli.RUN_COUNTS + ("batch_size",))
  validate.in_range("target_train_acc", cfg.target_train_acc, 0.0, 1.0)
  method_cfg = method_config(cfg)
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(cfg.num_devices)
  spec, splits = load_data(cfg)
  model, tokenizer = load_model(cfg)
  task = fewshot.load_task(cfg, mesh, {cfg.task_lm: (model, tokenizer)}, spec, splits)
  validate.task_context(task, method_cfg.prompt_length, "prompt_length")
  with cli.flag("template" if cfg.template else "task_lm"):
    emb = embedding_task.EmbeddingTask(model, tokenizer, task.scorer.template,
                                  fewshot.resolve_verbalizers(cfg, spec, tokenizer), mesh=mesh)
    emb.encode(task.train[:1], method_cfg.prompt_length)   # fail early on a bad template
  return gradient.METHODS[cfg.method](emb, method_cfg), emb, task


# ---- training ------------------------------------------------------------------------------------

def _float_metrics(metrics: dict) -> dict:
  out = {}
  for k, v in metrics.items():
    v = np.asarray(v)
    out[k] = float(v) if v.ndim == 0 else v.tolist()
  return out


def _evaluate(method, params, batches: list, labels: np.ndarray) -> dict:
  logits = np.concatenate([sharding.to_host(method.logits(params, b))[:len(i)]
                           for i, b in batches])
  return scores(logits, labels)


def train(method, emb, task: ClassificationTask, run: Run, cfg: BaselineConfig) -> dict:
  """Trains (or resumes) and evaluates; returns the results (also written to results.json)."""
  state = method.init(cfg.seed)
  restored = run.restore({"train": state})
  if restored is not None:
    state = method.place(restored["train"])
  length = method.cfg.prompt_length
  primary = "mcc" if cfg.dataset in MCC_DATASETS else "accuracy"
  full = emb.encode(task.train, length, null=method.needs_null)
  dev = list(emb.batches(task.dev, length, null=method.eval_needs_null))
  dev_labels = np.asarray([task.dev[j].label for i, _ in dev for j in i])
  n, b = len(task.train), min(cfg.batch_size, len(task.train))
  step = int(state.step)
  with stop_on_sigint(run) as stop:
    try:
      while step < cfg.steps:
        t0 = time.time()
        batch = full
        if b < n:   # a function of (seed, step) only, so resuming draws the same batches
          rows = np.random.default_rng([cfg.seed, step]).choice(n, b, replace=False)
          batch = emb.place_batch(embedding_task.take(full, rows))
        new_state, metrics = method.train_step(state, batch)
        record = _float_metrics(metrics)
        check_finite(step + 1, run, loss=record["loss"],   # stop before logging or recording it
                     parameters=all_finite(new_state.params))
        state, step = new_state, step + 1
        record["time_step"] = time.time() - t0
        if step % cfg.eval_every == 0 or step == cfg.steps:
          dev_scores = _evaluate(method, state.params, dev, dev_labels)
          state, _ = method.record_best(state, dev_scores[primary])
          prompt = method.describe(state.params)
          run.prompts.add(prompt, dev_scores[primary], step)
          record.update({f"dev_{k}": v for k, v in dev_scores.items()}, prompt=prompt)
        run.log(step, record)
        if step % cfg.log_every == 0 or step == cfg.steps:
          fields = {"loss": record["loss"], "train_acc": record["train_acc"]}
          if "dev_accuracy" in record:
            fields[f"dev_{primary}"] = record[f"dev_{primary}"]
          run.progress(step, **fields)
        run.maybe_save(step, {"train": state})
        if stop["stop"] and step < cfg.steps:
          run.save(step, {"train": state})
          run.print(f"stopped: saved step {step} in {run.workdir}; continue with --resume")
          raise KeyboardInterrupt
    except KeyboardInterrupt:
      if run.saved_step != step:
        run.save(step, {"train": state})
        run.print(f"interrupted: saved step {step} in {run.workdir}; continue with --resume")
      raise Interrupted(run.saved_step) from None
  return _results(method, emb, task, run, cfg, state, run.train_seconds(), primary)


def _history(run: Run) -> list[dict]:
  with open(run.metrics_path) as f:
    return [json.loads(line) for line in f]


def _results(method, emb, task, run, cfg, state, seconds, primary) -> dict:
  history = _history(run)
  reached = next((r["step"] for r in history if r["train_acc"] >= cfg.target_train_acc), None)
  best_step = int(state.best_step)
  params = state.best_params if best_step > 0 else state.params
  results = {"method": method.name, "dataset": cfg.dataset, "task_lm": cfg.task_lm,
             "steps": cfg.steps, "train_seconds": seconds, "metric": primary,
             "best_dev": float(state.best_score) if best_step > 0 else None,
             "best_step": best_step, "final_train_acc": history[-1]["train_acc"],
             "target_train_acc": cfg.target_train_acc,
             # the step whose forward (after step - 1 updates) first reached the target
             "step_reaching_target": reached, "prompt": method.describe(params),
             "top_prompts": run.prompts.records, "train_examples": len(task.train),
             "dev_examples": len(task.dev)}
  run.write_results(results)        # kept even if an evaluation below fails
  hard = method.hard_prompt(params)
  t0 = time.time()
  if hard is not None:
    results.update(hard_prompt=hard)
    model, tokenizer = emb.model, emb.tokenizer
    results["dev_accuracy_string"] = float(task.accuracy([hard["prompt"]], "dev")[0])
    if isinstance(model, CausalLM):
      results["perplexity"] = float(perplexity.prompt_perplexity(
          model, tokenizer, [hard["prompt"]],
          bos_token=hub.document_start(cfg.task_lm, tokenizer))[0])
  if task.test is not None:
    labels = [e.label for e in task.test]
    if hard is None:
      logits = emb.predict(lambda b: method.logits(params, b), task.test,
                           method.cfg.prompt_length, null=method.eval_needs_null,
                           progress=ProgressLine("test set", run.print))
    elif cfg.string_test:   # ClassificationTask's scorer (caches all test inputs at once)
      logits = task.scorer.class_logits([hard["prompt"]], task.test)[:, 0]
    else:                   # the same logits (tested), from the tokens the string encodes to
      ids = emb.hard_prompt_ids(hard["prompt"])
      logits = emb.predict(functools.partial(emb.logits, emb.embeddings[ids]), task.test,
                           len(ids), progress=ProgressLine("test set", run.print))
    test = scores(logits, labels)
    results.update(test_accuracy=test["accuracy"], test_mcc=test["mcc"],
                   test_examples=len(task.test))
    run.print(f"{method.name}: best dev {primary} {results['best_dev']} at step {best_step}, "
              f"test {primary} {test[primary]:.4f} ({results['prompt']!r})")
  results["eval_seconds"] = time.time() - t0
  return results


def run(cfg: BaselineConfig) -> dict:
  """Trains (or resumes) and evaluates; writes config, metrics, checkpoints, prompts, results."""
  cfg = resolve_epochs(cfg)
  paper.check_models(cfg)
  cli.check_run_dir(cfg)
  method, emb, task = build(cfg)
  run_ = cli.open_run(cfg, {**dataclasses.asdict(cfg),
                           "method_config": dataclasses.asdict(method.cfg)})
  note = validate.test_note({"test": task.test}, cfg.dataset, cfg.evaluate_test)
  if note:
    run_.print(note)
  run_.print(f"{cfg.method} on {cfg.dataset} (seed {cfg.dataset_seed}): task {cfg.task_lm}, "
             f"{len(task.train)} train / {len(task.dev)} dev examples, {cfg.steps} steps, "
             f"prompt length {method.cfg.prompt_length} -> {cfg.workdir}")
  run_.print(f"verbalizer tokens: {verbalizers.describe(task.scorer)}")
  results = train(method, emb, task, run_, cfg)
  run_.finish(results)
  return results
