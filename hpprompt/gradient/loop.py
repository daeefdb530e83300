"""The soft-prompt training loop of soft prompt tuning, InfoPrompt and PEZ on classification.

`train(method, emb, task, run, cfg)` trains a `gradient` method on an `tasks.embedding_task.
EmbeddingTask` (or resumes it from the run's checkpoint), evaluates on dev every `eval_every`
steps, keeps the best prompt, and scores the test set; `launch.soft_prompt.run` builds its
arguments from the flags. `cfg` is the launcher's config (read: `seed`, `steps`, `batch_size`,
`eval_every`, `log_every`, `dataset`, `task_lm`, `target_train_acc`, `string_test`). Ctrl-C
finishes the step, saves and stops (`training.run.stop_on_sigint`); --resume continues exactly.

PEZ's hard prompt is tested as a string: its dev accuracy through `ClassificationTask.accuracy`, its
test accuracy from the tokens the string encodes to, fed through the embedding path. Those logits
equal the string scorer's (tested), but the test inputs are scored in length-sorted chunks and not
cached all at once. `string_test=True` uses `ClassificationTask`'s scorer for the test set too.
"""
import functools
import json
import time

import numpy as np

from hpprompt.metrics import classification
from hpprompt.metrics import perplexity
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.tasks import embedding_task
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.training import sharding
from hpprompt.training.progress import ProgressLine
from hpprompt.training.run import Interrupted
from hpprompt.training.run import Run
from hpprompt.training.run import all_finite
from hpprompt.training.run import check_finite
from hpprompt.training.run import stop_on_sigint

__all__ = ("MCC_DATASETS", "Interrupted", "scores", "train")

MCC_DATASETS = ("glue/cola",)


def scores(logits: np.ndarray, labels) -> dict:
  """Accuracy and Matthews correlation of argmax predictions (RLPrompt's / GLUE's evaluators)."""
  preds = np.argmax(logits, -1)
  return {"accuracy": classification.accuracy(preds, labels),
          "mcc": classification.matthews_corrcoef(preds, labels)}


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


def train(method, emb, task: ClassificationTask, run: Run, cfg) -> dict:
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
