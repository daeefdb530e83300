"""Text style transfer with the prompt agent (PIN / RLPrompt): build, train, evaluate, and score
outputs.

`run(StyleTransferConfig(...))` is what `experiments/style_transfer.py` calls; `evaluate(...)`
serves
`experiments/evaluate_style_transfer.py`. Offline components (methods.md §2.2 lists the papers'):
  task LM / policy LM: SmolLM2-135M (the papers: GPT-2 / OPT task LMs, distilGPT-2 / OPT-125M
  policies);
  content: BERTScore over SmolLM2's layer `content_layer` (the papers: RoBERTa-large layer 17),
  rescaled
    with a baseline measured like bert-score's (mean P/R/F of random pairs of training sentences);
  style: logistic head on frozen SmolLM2 features trained on the training pool (the papers: a
    BERT-base Yelp classifier); any sequence-classification checkpoint by `--style_classifier`;
  fluency: only with `--fluency_classifier` (the papers' CoLA RoBERTa-large); PPL under SmolLM2.
The baseline (`tasks.style_transfer.content_baseline`), the classifier's training pool
(`tasks.style_data.classifier_pool`) and the trained head (`tasks.style_classifier`) are task code;
this module checks the flags and puts the pieces together.
"""
import dataclasses
import math
import os
import sys

import numpy as np

from hpprompt.agent import trainer
from hpprompt.agent.agent import PromptAgent
from hpprompt.launch import cli
from hpprompt.launch import run_flags
from hpprompt.launch import fewshot
from hpprompt.launch import validate
from hpprompt.metrics import bertscore
from hpprompt.metrics import style_transfer as st_metrics
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.tasks import generation
from hpprompt.tasks import style_classifier
from hpprompt.tasks import style_data
from hpprompt.tasks import style_transfer as st_task
from hpprompt.tasks.style_transfer import StyleTransferTask
from hpprompt.training import sharding
from hpprompt.training import writers

# Style-transfer settings of the papers' code on top of the agent presets (methods.md §1.6, §3.5):
# RLPrompt R = 100 z - 20, top-50 sampling, logit bias -10, 8 prompts a step; PIN R = z, 16 prompts.
TASK_AGENT = {"rlprompt": {"reward_new_range": (-20.0, 80.0), "sampling_top_k": 50,
                           "logit_bias": -10.0, "prompts_per_step": 8},
              "pin": {"reward_new_range": (0.0, 1.0), "prompts_per_step": 16}}
PAPER_STEPS = {"rlprompt": 12_000, "pin": 15_000}
# CPU-sized: 4 prompts of 3 tokens a step on 2 sources, 4 x 2 samples per pair.
CPU_AGENT_OVERRIDES = {"prompt_length": 3, "prompts_per_step": 4, "replay_batch": 16,
                       "replay_capacity": 4096, "learning_rate": 1e-3}


@dataclasses.dataclass(frozen=True)
class StyleTransferConfig(run_flags.RunSettings):
  method: str = "pin"
  task: str = "yelp"
  direction: str = "0to1"
  dataset_seed: int = 0
  train_file: str | None = None
  task_lm: str = "smollm2"
  policy_lm: str = "smollm2"
  content_lm: str | None = None        # default: the task LM
  content_layer: int = 20
  content_baseline: bool = True        # rescale BERTScore with a measured baseline
  style_classifier: str | None = None  # HF sequence classifier; None: train one on the pool
  classifier_pool: int = 600           # training sentences per style for the trained classifier
  fluency_classifier: str | None = None
  ppl_lm: str | None = None            # default: the task LM
  cache_dir: str | None = None         # classifier / baseline cache (default: the workdir)
  num_samples: int = 4
  num_bootstraps: int = 2
  sources_per_step: int = 2
  eval_samples: int = 4
  dev_limit: int = 4                   # 0: all 16
  test_limit: int = 50                 # 0: all
  top_k: int = 10
  template: str = generation.TEMPLATE
  steps: int = 60
  agent: dict = dataclasses.field(default_factory=lambda: dict(CPU_AGENT_OVERRIDES))
  source_token: str | None = None
  workdir: str = "runs/style_transfer"
  checkpoint_every: int = 10


def agent_config(cfg: StyleTransferConfig):
  base = TASK_AGENT.get(cfg.method.split("-")[0], {})
  return fewshot.agent_config(dataclasses.replace(cfg, agent={**base, **cfg.agent}))


def load_models(cfg, names: dict) -> dict:
  """{name: (model, tokenizer)} for flag -> name, each loaded once, errors naming the flag."""
  models = {}
  for flag_name, name in names.items():
    if name is not None and name not in models:
      with cli.flag(flag_name):
        models[name] = hub.load_pretrained(name, dtype=fewshot._dtype(cfg.dtype))
  return models


def _data(cfg) -> style_data.StyleData:
  for name in ("task", "direction"):
    with cli.flag(name):
      if name == "task" and cfg.task not in style_data.TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; choose one of {style_data.TASKS}.")
      if name == "direction" and cfg.direction not in style_data.DIRECTIONS:
        raise ValueError(f"unknown direction {cfg.direction!r}; choose one of "
                         f"{sorted(style_data.DIRECTIONS)}.")
  with cli.flag("train_file" if cfg.train_file else "dataset_seed"):
    return style_data.load(cfg.task, cfg.direction, dataset_seed=cfg.dataset_seed,
                           train_file=cfg.train_file)


def _classifier(cfg, flag_name: str):
  """The HF sequence classifier named by `flag_name`, or None (checked before any scoring)."""
  name = getattr(cfg, flag_name)
  if not name:
    return None
  with cli.flag(flag_name):
    model, tok = hub.load_pretrained(name, dtype=fewshot._dtype(cfg.dtype))
    return style_classifier.HFStyleClassifier(model, tok)


def components(cfg, models: dict, workdir: str):
  """(generator factory inputs, content scorer, style classifier, fluency classifier, info)."""
  cache = cfg.cache_dir or workdir
  clf, fluency = _classifier(cfg, "style_classifier"), _classifier(cfg, "fluency_classifier")
  content_name = cfg.content_lm or cfg.task_lm
  c_model, c_tok = models[content_name]
  with cli.flag("content_layer"):
    layers = getattr(c_model.config, "num_layers", None)
    if layers is not None and not 1 <= cfg.content_layer <= layers:
      raise ValueError(f"must be in [1, {layers}] for {content_name!r}.")
  is_causal = isinstance(c_model, CausalLM)
  start = hub.document_start(content_name, c_tok) if is_causal else "auto"
  with cli.flag("content_lm"):
    scorer = bertscore.BERTScorer(c_model, c_tok, layer=cfg.content_layer, start=start,
                                  prefix_space=not is_causal)
  info = {"content_lm": content_name, "content_layer": cfg.content_layer}
  texts, labels = style_data.classifier_pool(cfg.task, cfg.classifier_pool,
                                             dataset_seed=cfg.dataset_seed)
  if cfg.content_baseline:
    key = {"lm": content_name, "layer": cfg.content_layer, "task": cfg.task}
    baseline = st_task.content_baseline(scorer, texts, key, cache)
    scorer.baseline = np.asarray(baseline)
    info["content_baseline"] = baseline
  if clf is not None:
    info["style_classifier"] = cfg.style_classifier
  else:
    c_model, c_tok = models[cfg.task_lm]
    key = {"lm": cfg.task_lm, "task": cfg.task, "pool": cfg.classifier_pool,
           "seed": cfg.dataset_seed}
    clf = style_classifier.train_feature_classifier(
        c_model, c_tok, texts, labels, start_token=hub.document_start(cfg.task_lm, c_tok),
        cache_path=os.path.join(cache, "style_classifier.npz"), cache_key=key)
    info["style_classifier"] = f"logistic head on {cfg.task_lm} features"
    info["style_classifier_heldout_accuracy"] = clf.info["heldout_accuracy"]
  return scorer, clf, fluency, info


def _check_common(cfg, limits: tuple[str, ...]) -> None:
  """Settings of both launchers checked before any model is loaded."""
  validate.non_negative(cfg, limits)
  validate.directory(cfg.cache_dir, "cache_dir")


def _check_outputs_length(cfg, outputs: list[str], models: dict) -> None:
  """Each output within the perplexity LM's positions (one output sentence per line)."""
  name = cfg.ppl_lm or cfg.task_lm
  model, tok = models[name]
  limit = getattr(getattr(model, "config", None), "max_positions", None)
  if not limit:
    return
  for number, (line, ids) in enumerate(zip(outputs, tok.encode_batch(outputs)), 1):
    if len(ids) + 1 > limit:
      raise cli.FlagError("outputs", f"{cfg.outputs}:{number}: {len(line.split())} words "
                          f"({len(ids)} tokens) exceed the perplexity LM's {limit} positions "
                          f"({name}); expected one output sentence per line.")


def make_generator(cfg, models: dict, lower: bool = False) -> generation.Generator:
  """The task LM (`--task_lm`, causal) with `--template` and `--top_k` sampling."""
  model, tok = models[cfg.task_lm]
  with cli.flag("task_lm"):
    if not isinstance(model, CausalLM):
      raise ValueError(f"{cfg.task_lm!r} is not a causal LM; generation needs one.")
  with cli.flag("template"):
    return generation.Generator(model, tok, template=cfg.template, top_k=cfg.top_k or None,
                                lower=lower, start_token=hub.document_start(cfg.task_lm, tok))


def make_agent(cfg, models: dict, agent_cfg, mesh) -> PromptAgent:
  """The agent on `--policy_lm` (causal), after `--source_token` or the LM's document start."""
  lm, tok = models[cfg.policy_lm]
  with cli.flag("policy_lm"):
    if not isinstance(lm, CausalLM):
      raise ValueError(f"{cfg.policy_lm!r} is not a causal LM; the policy needs one.")
  source = cfg.source_token or hub.document_start(cfg.policy_lm, tok)
  with cli.flag("source_token" if cfg.source_token else "policy_lm"):
    return PromptAgent(lm, tok, agent_cfg, source_token=source, mesh=mesh)


def build_task(cfg, models: dict, data: style_data.StyleData, workdir: str):
  gen = make_generator(cfg, models, lower=data.lower)  # --template checked before the scorers
  scorer, clf, fluency, info = components(cfg, models, workdir)
  ppl_name = cfg.ppl_lm or cfg.task_lm
  limit = lambda xs, n: xs[:n] if n else xs
  task = StyleTransferTask(
      gen, scorer, clf, train=data.train, dev=limit(data.dev, cfg.dev_limit),
      test=limit(data.test, cfg.test_limit), target_label=data.target_label,
      references=limit(data.references, cfg.test_limit), num_samples=cfg.num_samples,
      num_bootstraps=cfg.num_bootstraps, sources_per_step=cfg.sources_per_step,
      eval_samples=cfg.eval_samples, seed=cfg.seed, ppl_lm=models[ppl_name],
      fluency_classifier=fluency)
  return task, info


def run(cfg: StyleTransferConfig) -> dict:
  """Trains (or resumes), selects the best prompt on dev, writes test outputs and results."""
  cli.check_positive(cfg, cli.RUN_COUNTS + ("num_samples", "num_bootstraps", "sources_per_step",
                                            "eval_samples"))
  _check_common(cfg, ("dev_limit", "test_limit", "top_k"))
  cli.check_run_dir(cfg)                # before any model is loaded
  agent_cfg = agent_config(cfg)
  with cli.flag("prompts_per_step"):
    if agent_cfg.prompts_per_step % cfg.sources_per_step:
      raise ValueError(f"{agent_cfg.prompts_per_step} is not a multiple of sources_per_step "
                       f"{cfg.sources_per_step}.")
  data = _data(cfg)
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(cfg.num_devices)
  models = load_models(cfg, {"policy_lm": cfg.policy_lm, "task_lm": cfg.task_lm,
                             "content_lm": cfg.content_lm, "ppl_lm": cfg.ppl_lm})
  task, info = build_task(cfg, models, data, cfg.workdir)
  agent = make_agent(cfg, models, agent_cfg, mesh)
  run_ = cli.open_run(cfg, {**dataclasses.asdict(cfg),
                            "agent_config": dataclasses.asdict(agent_cfg),
                            "components": info})
  run_.print(f"{cfg.method} on {cfg.task} {cfg.direction}: policy {cfg.policy_lm}, task "
             f"{cfg.task_lm}, style classifier {info['style_classifier']} "
             f"(held-out acc. {info.get('style_classifier_heldout_accuracy', float('nan')):.3f}), "
             f"{len(task.dev)} dev / {len(task.test)} test inputs, {cfg.steps} steps -> "
             f"{cfg.workdir}")
  if not cfg.evaluate_test:
    task.test = []
  results = trainer.train(agent, task, run_, trainer.TrainConfig(
      steps=cfg.steps, eval_every=cfg.eval_every, log_every=cfg.log_every, seed=cfg.seed))
  results["components"] = info
  if task.last_outputs is not None:
    path = os.path.join(cfg.workdir, f"test_outputs.{cfg.direction}.txt")
    writers.write_file(path, "".join(line.replace("\n", " ") + "\n" for line in task.last_outputs))
    results["test_outputs"] = path
  run_.finish(results)
  return results


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(StyleTransferConfig):
  outputs: str | None = None
  prompt: str | None = None
  output_json: str | None = None
  judge: bool = False                  # also Style under tasks/style_judge.py (Yelp; issue 21)


def evaluate(cfg: EvaluateConfig) -> dict:
  """Scores an outputs file aligned with the test inputs, or a manual prompt's outputs."""
  if (cfg.outputs is None) == (cfg.prompt is None):
    raise cli.FlagError("outputs", "give exactly one of --outputs and --prompt.")
  validate.text("prompt", cfg.prompt)
  _check_common(cfg, ("test_limit", "top_k"))
  validate.output_file(cfg.output_json, "output_json")
  data = _data(cfg)
  if cfg.judge and cfg.task != "yelp":
    raise cli.FlagError("judge", "the style judge is trained on Yelp only.")
  test = data.test[:cfg.test_limit] if cfg.test_limit else data.test
  refs = data.references[:len(test)]
  if cfg.outputs is not None:
    with cli.flag("outputs"):
      outputs = style_data.read_lines(cfg.outputs, "outputs file", sentences=True)
      if len(outputs) != len(data.test) and len(outputs) != len(test):
        raise ValueError(f"{cfg.outputs!r} has {len(outputs)} lines; expected one per test input "
                         f"({len(data.test)}).")
    outputs = outputs[:len(test)]
  models = load_models(cfg, {"task_lm": cfg.task_lm, "content_lm": cfg.content_lm,
                             "ppl_lm": cfg.ppl_lm})
  workdir = cfg.cache_dir or cfg.workdir
  if cfg.prompt is not None:
    task, info = build_task(cfg, models, dataclasses.replace(data, test=test, references=refs),
                            workdir)
    with cli.flag("prompt"):
      task.generator.check_length([cfg.prompt], test)
    results = task.evaluate(cfg.prompt)
    results = {k[len("test_"):]: v for k, v in results.items()}
    outputs = task.last_outputs
  else:
    _check_outputs_length(cfg, outputs, models)
    scorer, clf, fluency, info = components(cfg, models, workdir)
    results = st_metrics.evaluate_outputs(
        test, outputs, data.target_label, content_scorer=scorer, classifier=clf, references=refs,
        ppl_lm=models[cfg.ppl_lm or cfg.task_lm], fluency_classifier=fluency)
  if cfg.judge:   # the separate test judge (hashed n-grams, a pool disjoint from the reward's)
    from hpprompt.tasks import style_judge  # noqa: PLC0415
    results["style_judge"] = round(100 * float(np.mean(
        style_judge.fit_judge().probs(outputs).argmax(1) == data.target_label)), 1)
  if isinstance(results.get("ppl"), float) and math.isnan(results["ppl"]):
    results["ppl"] = None
    print("note: no output has two or more tokens, so their perplexity is undefined (ppl null).",
          file=sys.stderr, flush=True)
  results.update(task=cfg.task, direction=cfg.direction, outputs_file=cfg.outputs,
                 prompt=cfg.prompt, components=info)
  if cfg.output_json:
    validate.write_json(cfg.output_json, {**results, "outputs": outputs}, "output_json",
                        shown={k: v for k, v in results.items() if k != "components"})
  return results
