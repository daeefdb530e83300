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

This module is flags -> config -> one call: it checks the settings and builds the method, its
embedding task and the string task (`build`); the training loop and the evaluation are
`hpprompt.gradient.loop.train` (re-exported here as `train`, with `scores` and `Interrupted`).
"""
import dataclasses

import jax.numpy as jnp

from hpprompt import gradient
from hpprompt.gradient import loop
from hpprompt.gradient.loop import Interrupted
from hpprompt.gradient.loop import scores
from hpprompt.gradient.loop import train
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import paper
from hpprompt.launch import run_flags
from hpprompt.launch import validate
from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import embedding_task
from hpprompt.tasks import user_data
from hpprompt.tasks import verbalizers
from hpprompt.training import sharding

__all__ = ("BaselineConfig", "Interrupted", "build", "run", "scores", "train")


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
  results = loop.train(method, emb, task, run_, cfg)
  run_.finish(results)
  return results
