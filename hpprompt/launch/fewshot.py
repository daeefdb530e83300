"""Few-shot classification with the prompt agent (PIN / RLPrompt): build, train, evaluate.

`run(FewShotConfig(...))` is what `experiments/fewshot_classification.py` calls; Colab users call it
directly. Every failure caused by a setting is raised as `cli.FlagError` naming the setting.
"""
import dataclasses
import os

import jax.numpy as jnp

from hpprompt.agent import trainer
from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import PRESETS
from hpprompt.agent.config import SELECTION
from hpprompt.agent.config import AgentConfig
from hpprompt.launch import cli
from hpprompt.launch import run_flags
from hpprompt.launch import paper
from hpprompt.launch import validate
from hpprompt.metrics import perplexity
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks import user_data
from hpprompt.tasks import verbalizers
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.training import sharding

# CPU-sized defaults: the real SmolLM2-135M as policy and task LM on SST-2 16-shot, ~10 minutes on
# a 2-core laptop CPU. The papers' set-ups: `paper.apply(cfg)` (`--paper`), hpprompt/launch/paper.py.
CPU_AGENT_OVERRIDES = {"prompt_length": 2, "prompts_per_step": 8, "replay_batch": 32,
                       "replay_capacity": 4096, "learning_rate": 1e-3}


@dataclasses.dataclass(frozen=True)
class FewShotConfig(run_flags.RunSettings, user_data.DataFields):
  method: str = "pin"                 # an agent preset: pin, rlprompt, pin-td, rlprompt-rb, ...
  dataset: str = "sst-2"
  dataset_seed: int = 0
  data_dir: str | None = None         # few-shot root (default: bundled data)
  task_lm: str = "smollm2"
  policy_lm: str = "smollm2"
  template: str | None = None         # default: the data set's (MLM or causal) template
  verbalizers: tuple[str, ...] | None = None
  calibrate: bool = True               # contextual calibration (see tasks/classification.py)
  selection: str | None = None         # best prompt by 'accuracy' or 'reward'; None: the preset's
  truncate: bool = False               # truncate over-long masked-LM inputs (RLPrompt's sides)
  agent: dict = dataclasses.field(default_factory=lambda: dict(CPU_AGENT_OVERRIDES))
  source_token: str | None = None
  workdir: str = "runs/fewshot"


def _dtype(name: str):
  if name not in ("float32", "bfloat16"):
    raise ValueError(f"dtype must be float32 or bfloat16, got {name!r}.")
  return jnp.float32 if name == "float32" else jnp.bfloat16


def agent_config(cfg: FewShotConfig) -> AgentConfig:
  with cli.flag("method"):
    if cfg.method not in PRESETS:
      raise ValueError(f"unknown method {cfg.method!r}; choose one of {sorted(PRESETS)}.")
  base = PRESETS[cfg.method]
  fields = {f.name for f in dataclasses.fields(AgentConfig)}
  for key in cfg.agent:
    if key not in fields:
      raise cli.FlagError(key, f"not an agent setting; known: {sorted(fields)}.")
  try:
    agent_cfg = dataclasses.replace(base, **cfg.agent)
  except (ValueError, TypeError) as e:
    name = next((k for k in cfg.agent if k in str(e)), "method")
    raise cli.FlagError(name, cli.one_line(e)) from e
  validate.numbers(agent_cfg)
  validate.reward_ranges(agent_cfg)
  return agent_cfg


def load_user_data(cfg) -> tuple[data.DatasetSpec, dict]:
  """Your own data (--dataset=PATH or tfds:NAME, hpprompt.tasks.user_data), errors named."""
  with cli.flag("dataset_seed"):
    if cfg.dataset_seed < 0:
      raise ValueError(f"must be >= 0, got {cfg.dataset_seed}.")
  try:
    spec, splits = user_data.load(cfg.dataset, cfg, seed=cfg.dataset_seed, data_dir=cfg.data_dir)
  except data.DataError as e:
    raise cli.FlagError(getattr(e, "flag", None) or "dataset", cli.one_line(e)) from e
  validate.verbalizers(spec, cfg.verbalizers)
  return spec, splits


def refuse_user_fields(cfg) -> None:
  """FlagError for a user-data setting (--shots, --classes, ...) given with a bundled set."""
  for name, value in user_data.fields(cfg).items():
    if value is not None:
      raise cli.FlagError(name, f"only for your own data (--dataset=PATH or tfds:NAME); "
                          f"{cfg.dataset!r} is a bundled set with fixed splits.")


def load_data(cfg: FewShotConfig) -> tuple[data.DatasetSpec, dict]:
  """The data set's spec and its train / dev / test examples (test None when not available)."""
  if user_data.is_user(cfg.dataset):
    return load_user_data(cfg)
  refuse_user_fields(cfg)
  with cli.flag("dataset"):
    spec = data.get_spec(cfg.dataset)
    if cfg.dataset.startswith("glue/") or "_" in cfg.dataset:
      few_shot = sorted(k for k in data.DATASETS if "/" not in k and "_" not in k)
      raise ValueError(f"{cfg.dataset!r} is a tensorflow-datasets set; this launcher reads the "
                       f"few-shot sets {few_shot}.")
  with cli.flag("dataset_seed"):
    if cfg.dataset_seed not in data.SEED_FOLDERS:
      raise ValueError(f"must be one of {sorted(data.SEED_FOLDERS)}, got {cfg.dataset_seed}.")
  splits = {}
  if cfg.data_dir and not os.path.isdir(cfg.data_dir):
    raise cli.FlagError("data_dir", f"{cfg.data_dir} is not a directory (expected "
                        f"<data_dir>/{cfg.dataset}/16-<seed>/train.tsv).")
  with cli.flag("data_dir" if cfg.data_dir else "dataset"):
    for split in ("train", "dev", "test"):
      try:
        splits[split] = data.load_few_shot(cfg.dataset, cfg.dataset_seed, split, cfg.data_dir)
      except data.MissingSplitError:
        if split != "test":
          raise
        splits[split] = None
  validate.verbalizers(spec, cfg.verbalizers)
  return spec, splits


def resolve_verbalizers(cfg, spec: data.DatasetSpec, tokenizer) -> tuple[str, ...]:
  """--verbalizers (leading spaces as 'Ġword' or quoted), else the data set's for this tokenizer."""
  if cfg.verbalizers:
    with cli.flag("verbalizers"):
      return verbalizers.parse(cfg.verbalizers)
  with cli.flag("task_lm"):
    return verbalizers.for_tokenizer(spec, tokenizer)


def load_task(cfg: FewShotConfig, mesh, models: dict, spec: data.DatasetSpec,
              splits: dict) -> ClassificationTask:
  with cli.flag("task_lm"):
    model, tokenizer = models[cfg.task_lm]
  causal = isinstance(model, CausalLM)
  template = cfg.template or (spec.causal_template if causal else spec.mlm_template)
  words = resolve_verbalizers(cfg, spec, tokenizer)
  with cli.flag("template" if cfg.template else "task_lm"):
    if ("{sentence_2}" in template) != spec.pair:
      raise ValueError(f"template {template!r} " + ("needs {sentence_2}: " if spec.pair else
                       "has {sentence_2}, but ") + f"{spec.name} is a "
                       + ("sentence-pair" if spec.pair else "single-sentence") + " data set.")
  with cli.flag("template" if cfg.template else "verbalizers" if cfg.verbalizers else "task_lm"):
    scorer = scoring.make_scorer(model, tokenizer, template, words, mesh=mesh)
  with cli.flag("selection"):
    return ClassificationTask(scorer, splits["train"], splits["dev"],
                              splits["test"] if cfg.evaluate_test else None,
                              calibrate=getattr(cfg, "calibrate", False),
                              selection=getattr(cfg, "selection", None) or "accuracy",
                              truncate=getattr(cfg, "truncate", False))


def load_models(cfg: FewShotConfig) -> dict:
  dtype = _dtype(cfg.dtype)
  models = {}
  for flag_name in ("policy_lm", "task_lm"):
    name = getattr(cfg, flag_name)
    if name not in models:
      with cli.flag(flag_name):
        models[name] = hub.load_pretrained(name, dtype=dtype)
  with cli.flag("policy_lm"):
    if not isinstance(models[cfg.policy_lm][0], CausalLM):
      raise ValueError(f"{cfg.policy_lm!r} is not a causal LM; the policy needs one.")
  return models


def resolve(cfg: FewShotConfig) -> FewShotConfig:
  """`cfg` with the preset's selection criterion filled in."""
  if cfg.selection is None and cfg.method in SELECTION:
    cfg = dataclasses.replace(cfg, selection=SELECTION[cfg.method])
  return cfg


def build(cfg: FewShotConfig) -> tuple[PromptAgent, ClassificationTask, dict]:
  """(agent, task, {name: (model, tokenizer)} of the loaded LMs)."""
  cfg = resolve(cfg)
  agent_cfg = agent_config(cfg)
  paper.check_models(cfg)
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(cfg.num_devices)
  spec, splits = load_data(cfg)
  models = load_models(cfg)
  task = load_task(cfg, mesh, models, spec, splits)
  lm, tokenizer = models[cfg.policy_lm]
  validate.policy_context(lm, agent_cfg.prompt_length)
  validate.policy_vocab(agent_cfg, int(lm.output_embedding().shape[0]))
  validate.task_context(task, agent_cfg.prompt_length, "prompt_length")
  source = cfg.source_token or hub.document_start(cfg.policy_lm, tokenizer)
  try:
    with cli.flag("source_token" if cfg.source_token else "policy_lm"):
      agent = PromptAgent(lm, tokenizer, agent_cfg, source_token=source, mesh=mesh)
  except cli.FlagError as e:
    if e.flag != "init_prompt" and "filter_top_k" in str(e):
      raise cli.FlagError("filter_top_k", cli.one_line(e.__cause__)) from e
    raise
  return agent, task, models


def add_perplexity(results: dict, cfg: FewShotConfig, models: dict) -> None:
  """Perplexity of the top prompts under the task LM if it is causal, else the policy LM."""
  name = cfg.task_lm if isinstance(models[cfg.task_lm][0], CausalLM) else cfg.policy_lm
  lm, tokenizer = models[name]
  records = results.get("top_prompts") or []
  if not records:
    return
  ppl = perplexity.prompt_perplexity(lm, tokenizer, [r["prompt"] for r in records],
                                     bos_token=hub.document_start(name, tokenizer))
  for record, value in zip(records, ppl):
    record["perplexity"] = float(value)
  results["perplexity_lm"] = name
  results["best"] = {**results["best"], "perplexity": records[0]["perplexity"]}


def run(cfg: FewShotConfig) -> dict:
  """Trains (or resumes) and evaluates; writes config, metrics, checkpoints, prompts, results."""
  cli.check_positive(cfg)
  cfg = resolve(cfg)
  cli.check_run_dir(cfg)
  agent, task, models = build(cfg)
  run_ = cli.open_run(cfg, {**dataclasses.asdict(cfg),
                           "agent_config": dataclasses.asdict(agent.cfg)})
  note = validate.test_note({"test": task.test}, cfg.dataset, cfg.evaluate_test)
  if note:
    run_.print(note)
  task.progress = run_.print             # progress lines of the test-set evaluation
  run_.print(f"{cfg.method} on {cfg.dataset} (seed {cfg.dataset_seed}): policy {cfg.policy_lm}, "
             f"task {cfg.task_lm}, {len(task.train)} train / {len(task.dev)} dev examples, "
             f"{cfg.steps} steps -> {cfg.workdir}")
  run_.print(f"verbalizer tokens: {verbalizers.describe(task.scorer)}; best prompt by "
             f"{task.validation_metric}")
  results = trainer.train(agent, task, run_, trainer.TrainConfig(
      steps=cfg.steps, eval_every=cfg.eval_every, log_every=cfg.log_every, seed=cfg.seed))
  run_.write_results(results)           # written before anything that could still fail
  add_perplexity(results, cfg, models)
  if "perplexity" in results.get("best") or {}:
    run_.print(f"best prompt perplexity under {results['perplexity_lm']}: "
               f"{results['best']['perplexity']:.1f}")
  run_.finish(results)
  return results
