"""Textual inversion with CLIP: PIN / RLPrompt (the agent) or PEZ find a hard prompt per image.

`run(TextualInversionConfig(...))` is what `experiments/textual_inversion.py` calls. Each target
image is one search, as in the papers (PIN: 10 targets x 3 seeds, averaged; methods.md §2.3): the
agent's trainer (`agent.trainer.train`) or PEZ (`gradient.pez.PEZ` on a `CLIPPromptTask`) runs
in `<workdir>/<index>-<image name>/`, a run directory of its own (config, metrics, checkpoints,
prompts.csv, results.json), and --resume continues each unfinished target exactly and skips the
finished ones. The CLIP model, its encoded targets and the policy LM are loaded once.

The launcher then writes `<workdir>/prompts.csv` (target, rank, prompt, CLIP score, perplexity of
each best prompt under the policy LM), `results.json` (per target and the mean best CLIP score) and
`contact_sheet.png` (each target image beside its best prompts and scores). Every failure caused by
a setting is raised as `cli.FlagError` naming it.
"""
import csv
import dataclasses
import io
import json
import os
import re

import numpy as np

from hpprompt.agent import trainer
from hpprompt.agent.agent import PromptAgent
from hpprompt.gradient import pez
from hpprompt.gradient import pez_clip
from hpprompt.launch import cli
from hpprompt.launch import run_flags
from hpprompt.launch import contact_sheet
from hpprompt.launch import fewshot
from hpprompt.launch import validate
from hpprompt.metrics import perplexity
from hpprompt.models import clip_loader
from hpprompt.models import hub
from hpprompt.models.base import CausalLM
from hpprompt.tasks import textual_inversion as ti
from hpprompt.training import sharding
from hpprompt.training import writers
from hpprompt.training.run import saved_steps

_TARGET = re.compile(r"^\d{2,}-")     # <index>-<image name>, see _target_dir
BUNDLED_IMAGES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "images")

# The paper's textual-inversion set-up on top of each agent preset (methods.md §3.5): prompt length
# 8, 32 prompts per step, PIN's filter k = 10,000 (PIN's CLIP README.md:20-21 runs
# fluent_top_k=10000) and reward [0, 1] -> [0, 1]; RLPrompt's baseline with reward scale 80;
# replay 256 / 64,000 as in the preset.
_SHAPE = {"prompt_length": 8, "prompts_per_step": 32}
TASK_PRESETS = {
    "pin": {**_SHAPE, "filter_top_k": 10_000},
    "pin-td": {**_SHAPE, "filter_top_k": 10_000},
    "pin-no-fluency": dict(_SHAPE),
    "rlprompt": {**_SHAPE, "reward_new_range": (0.0, 80.0)},
    "rlprompt-fluency": {**_SHAPE, "reward_new_range": (0.0, 80.0)},
    "rlprompt-rb": dict(_SHAPE),
}
PAPER_STEPS = {"agent": 20_000, "pez": 3_000}      # PIN 20,000 / eval 50; PEZ iter 3,000
PAPER_EVAL_EVERY = {"agent": 50, "pez": 50}
# CPU-sized: fewer prompts per step, small replay, higher learning rate (as fewshot's overrides).
CPU_AGENT_OVERRIDES = {"prompts_per_step": 16, "replay_batch": 32, "replay_capacity": 4096,
                       "learning_rate": 1e-3}
# PEZ's CLIP configuration (baselines.md §2.2): 16 tokens, AdamW lr 0.1 / weight decay 0.1, no
# clipping, ids uniform over the whole vocabulary (population = vocabulary size, set at build).
PEZ_CLIP = {"prompt_length": 16, "learning_rate": 0.1, "weight_decay": 0.1, "init": "vocab",
            "grad_clip": float("inf")}


@dataclasses.dataclass(frozen=True)
class TextualInversionConfig(run_flags.RunSettings):
  method: str = "pin"                  # pez, or an agent preset (pin, rlprompt, pin-td, ...)
  image: str = BUNDLED_IMAGES          # files, directories, URLs (comma-separated)
  clip: str = clip_loader.PAPER_CLIP   # hub name, OpenCLIP / HF directory, or 'tiny'
  policy_lm: str = "smollm2"           # the agent's LM; perplexity of the prompts for every method
  agent: dict = dataclasses.field(default_factory=lambda: dict(CPU_AGENT_OVERRIDES))
  pez: dict = dataclasses.field(default_factory=dict)   # PEZConfig fields over PEZ_CLIP
  source_token: str | None = None
  workdir: str = "runs/textual_inversion"
  top_prompts: int = 3                 # prompts per target in prompts.csv and the contact sheet


def agent_config(cfg: TextualInversionConfig):
  task = TASK_PRESETS.get(cfg.method, dict(_SHAPE))
  return fewshot.agent_config(dataclasses.replace(cfg, agent={**task, **cfg.agent}))


def _target_dir(cfg, index: int, name: str) -> str:
  stem = os.path.splitext(os.path.basename(name.rstrip("/")))[0] or "image"
  return os.path.join(cfg.workdir, f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)[:40]}")


def _target_runs(workdir: str, saved: bool) -> list[str]:
  """Target run directories of an earlier run: every one that began (config.json), or with
  `saved` those holding a checkpoint or their results."""
  if not os.path.isdir(workdir):
    return []
  subs = [os.path.join(workdir, n) for n in sorted(os.listdir(workdir)) if _TARGET.match(n)]
  if saved:
    return [d for d in subs if saved_steps(d) or os.path.exists(os.path.join(d, "results.json"))]
  return [d for d in subs if os.path.exists(os.path.join(d, "config.json"))]


def check_workdir(cfg: TextualInversionConfig) -> None:
  """--workdir / --resume against the targets of an earlier run (before any model loads):
  --resume needs a run that began; a fresh start refuses one with saved work, naming --resume."""
  cli.check_run_dir(dataclasses.replace(cfg, resume=False))   # a file, not writable, ...
  if cfg.resume and not _target_runs(cfg.workdir, saved=False):
    raise cli.FlagError("resume", f"no run in {cfg.workdir} to resume (no target directory with "
                        "a config.json); run without --resume to start it.")
  saved = _target_runs(cfg.workdir, saved=True)
  if not cfg.resume and saved:
    raise cli.FlagError("workdir", f"{cfg.workdir} already holds a run (target "
                        f"{os.path.basename(saved[0])}); pass --resume to continue it (finished "
                        "targets are kept, the others continue or start) or choose another "
                        "--workdir.")


def prompt_length(cfg: TextualInversionConfig) -> int:
  """Prompt tokens of the method (PEZ: CLIP tokens; the agent: policy tokens)."""
  if cfg.method == "pez":
    return cfg.pez.get("prompt_length", PEZ_CLIP["prompt_length"])
  return agent_config(cfg).prompt_length


def pez_config(options: dict, vocab_size: int) -> pez.PEZConfig:
  """PEZ_CLIP (population = the whole vocabulary) with `options` on top; errors name the field."""
  fields = {f.name for f in dataclasses.fields(pez.PEZConfig)}
  for key in options:
    if key not in fields:
      raise cli.FlagError(key, f"not a PEZ setting; known: {sorted(fields)}.")
  cfg = pez.PEZConfig(**{**PEZ_CLIP, "population": vocab_size, **options})
  for name, message in cfg.problems():
    raise cli.FlagError(name, message)
  return cfg


def check_clip_context(cfg: TextualInversionConfig, context: int) -> None:
  """The prompt between CLIP's start and end tokens within its text context (not cut silently)."""
  length = prompt_length(cfg)
  if length + 2 > context:
    raise cli.FlagError("prompt_length", f"{length} tokens with CLIP's start and end tokens "
                        f"exceed its {context}-token text context; use at most {context - 2}.")


def load(cfg: TextualInversionConfig):
  """(scorer, targets [(name, image, embedding)], policy (lm, tokenizer), mesh)."""
  cli.check_positive(cfg, cli.RUN_COUNTS + ("top_prompts",))
  if cfg.method != "pez":
    agent_config(cfg)    # unknown method / agent setting: fail before loading models
  check_workdir(cfg)
  with cli.flag("dtype"):
    dtype = fewshot._dtype(cfg.dtype)   # noqa: SLF001
  with cli.flag("num_devices"):
    mesh = sharding.make_mesh(cfg.num_devices)
  with cli.flag("image"):
    images = ti.load_images(cfg.image)
  with cli.flag("clip"):
    model, tokenizer, preprocess = clip_loader.load_clip(cfg.clip, dtype=dtype, seed=cfg.seed)
    scorer = ti.CLIPScorer(model, tokenizer, mesh=mesh, preprocess=preprocess)
  check_clip_context(cfg, scorer.context_length)
  with cli.flag("image"):
    embeds = scorer.image_embeds([im for _, im in images])
  with cli.flag("policy_lm"):
    policy = hub.load_pretrained(cfg.policy_lm, dtype=dtype)
    if not isinstance(policy[0], CausalLM):
      raise ValueError(f"{cfg.policy_lm!r} is not a causal LM.")
  if cfg.method != "pez":
    validate.policy_context(policy[0], prompt_length(cfg))
  targets = [(name, im, e) for (name, im), e in zip(images, embeds)]
  return scorer, targets, policy, mesh


def _perplexities(cfg, policy, prompts: list[str]) -> list[float]:
  lm, tokenizer = policy
  if not prompts:
    return []
  ppl = perplexity.prompt_perplexity(lm, tokenizer, prompts,
                                     bos_token=hub.document_start(cfg.policy_lm, tokenizer))
  return [float(p) for p in ppl]


def _run_config(cfg, name: str, extra: dict) -> dict:
  return {**dataclasses.asdict(cfg), "target": name, **extra}


def run(cfg: TextualInversionConfig) -> dict:
  """Searches a prompt for every target; writes each target's run and the summary files."""
  scorer, targets, policy, mesh = load(cfg)
  if cfg.method == "pez":
    searcher = pez_clip.PEZSearch(cfg, pez_config(cfg.pez, scorer.tokenizer.vocab_size), scorer,
                                  mesh)
  else:
    agent_cfg = agent_config(cfg)
    lm, tokenizer = policy
    source = cfg.source_token or hub.document_start(cfg.policy_lm, tokenizer)
    with cli.flag("source_token" if cfg.source_token else "policy_lm"):
      agent = PromptAgent(lm, tokenizer, agent_cfg, source_token=source, mesh=mesh)
  print(f"{cfg.method}: {len(targets)} target image(s), CLIP {cfg.clip}, policy {cfg.policy_lm}, "
        f"{cfg.steps} steps each -> {cfg.workdir}", flush=True)
  summaries = []
  for index, (name, image, embed) in enumerate(targets):
    workdir = _target_dir(cfg, index, name)
    done = os.path.join(workdir, "results.json")
    if cfg.resume and os.path.exists(done):
      with open(done) as f:
        results = json.load(f)
    else:
      # --resume: a target with a checkpoint continues; one killed before its first (or not
      # reached) starts afresh.
      sub = dataclasses.replace(cfg, workdir=workdir, resume=cfg.resume and bool(
          saved_steps(workdir)))
      if cfg.method == "pez":
        run_ = cli.open_run(sub, _run_config(cfg, name, {"pez_config": searcher.record()}))
        run_.print(f"[{index + 1}/{len(targets)}] {name}")
        results = searcher.train(run_, embed)
      else:
        task = ti.TextualInversionTask(scorer, embed, name)
        run_ = cli.open_run(sub, _run_config(cfg, name,
                                             {"agent_config": dataclasses.asdict(agent.cfg)}))
        run_.print(f"[{index + 1}/{len(targets)}] {name}")
        results = trainer.train(agent, task, run_, trainer.TrainConfig(
            steps=cfg.steps, eval_every=cfg.eval_every, log_every=cfg.log_every, seed=cfg.seed))
      top = (results.get("top_prompts") or [])[:cfg.top_prompts]
      for record, ppl in zip(top, _perplexities(cfg, policy, [r["prompt"] for r in top])):
        record["perplexity"] = ppl
      results.update(target=name, perplexity_lm=cfg.policy_lm)
      run_.finish(results)
    summaries.append(results)
  return _summarize(cfg, targets, summaries)


def _summarize(cfg, targets, summaries: list[dict]) -> dict:
  rows = []
  for (name, _, _), results in zip(targets, summaries):
    for rank, r in enumerate((results.get("top_prompts") or [])[:cfg.top_prompts], 1):
      rows.append({"target": name, "rank": rank, "prompt": r["prompt"],
                   "clip_score": r["score"], "perplexity": r.get("perplexity", float("nan")),
                   "step": r["step"]})
  best = [next((r for r in rows if r["target"] == name and r["rank"] == 1), None)
          for name, _, _ in targets]
  scores = [b["clip_score"] for b in best if b is not None]
  results = {"method": cfg.method, "clip": cfg.clip, "policy_lm": cfg.policy_lm,
             "steps": cfg.steps, "targets": [
                 {"target": name, "best": b, "workdir": _target_dir(cfg, i, name)}
                 for i, ((name, _, _), b) in enumerate(zip(targets, best))],
             "mean_best_clip_score": float(np.mean(scores)) if scores else None}
  if sharding.is_main_process():
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, ["target", "rank", "prompt", "clip_score", "perplexity", "step"])
    writer.writeheader()
    writer.writerows(rows)
    writers.write_file(os.path.join(cfg.workdir, "prompts.csv"), table.getvalue())
    writers.write_file(os.path.join(cfg.workdir, "results.json"), json.dumps(results, indent=2))
    contact_sheet.write(os.path.join(cfg.workdir, "contact_sheet.png"),
                        [(name, image, [r for r in rows if r["target"] == name])
                         for name, image, _ in targets])
  if scores:
    mean = results["mean_best_clip_score"]
    print(f"mean best CLIP score over {len(scores)} target(s): {mean:.4f} -> "
          f"{cfg.workdir}/prompts.csv, contact_sheet.png", flush=True)
  return results


__all__ = ("TextualInversionConfig", "run")
