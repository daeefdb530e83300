"""The results grid: data sets x methods x seeds, one run directory per cell, resumable.

`run(GridConfig(...))` is what `experiments/results_grid.py` calls. Cell `OUT/<dataset>/<method>_
seed<k>` is a run of an existing launcher, called in this process through its importable `run(...)`:
`manual` (`hpprompt.launch.manual`: the best bundled manual prompt on dev), `pin` and `rlprompt`
(`hpprompt.launch.fewshot`), `pin_init` (PIN from the manual method's prompt, `grid_init`; only
when asked for), `soft`, `infoprompt`, `infoprompt_released` and `pez`
(`hpprompt.launch.soft_prompt`), each at its launcher's CPU defaults. Cell seed k is the run's
`seed` and, unless `dataset_seed` is given, its few-shot split too (the papers' protocol: seeds
over splits). No subprocesses: each launcher's `run` loads its own models and frees them when it
returns, and the grid clears JAX's compilation caches between cells, so memory does not grow.

`shard=(i, n)` runs only cells i, i + n, i + 2n, ... of the grid's fixed order: n processes or
machines given 0..n-1 share one OUT without overlap and without a coordinator (a Slurm array, Ray
tasks, ssh); each is resumable like the whole grid, none writes the report, and
`report_only` writes it once they are all done. A grid holds `OUT` (a shard `OUT/.shards/I-of-N`)
for its process, and every cell's run directory is held by the run in it.

A cell whose `results.json` holds a test metric is done and skipped; one with a checkpoint continues
(`--resume`); anything else starts (again). A failing cell is recorded in `OUT/grid_log.jsonl` (one
line per attempt) and the grid goes on; Ctrl-C stops the running cell as its launcher does (saved,
resumed next time) and ends the grid. At the end the report (`hpprompt.report`) is written over the
finished cells into `OUT/report`.

RLPrompt's fair budget: the same number of prompts scored by the task LM as PIN,
steps = ceil(PIN steps x PIN prompts per step / RLPrompt prompts per step) (`fair_steps`); the rule
and its numbers are in the cell's config.json (`notes.fair_budget`).
"""
import dataclasses
import fnmatch
import gc
import json
import math
import os
import time

import jax

from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import manual
from hpprompt.launch import paper
from hpprompt.launch import soft_prompt
from hpprompt.orchestration import grid_init
from hpprompt.orchestration.grid_status import AGENT_METHODS
from hpprompt.orchestration.grid_status import LOG
from hpprompt.orchestration.grid_status import MINUTES  # noqa: F401  (public: grid.MINUTES)
from hpprompt.orchestration.grid_status import describe
from hpprompt.orchestration.grid_status import status
from hpprompt.report import report as report_lib
from hpprompt.report import runs as runs_lib
from hpprompt.tasks import data
from hpprompt.tasks import user_data
from hpprompt.training import writers
from hpprompt.training.run import Interrupted
from hpprompt.training.run import saved_steps

METHODS = ("manual", "pin", "rlprompt", "soft", "infoprompt", "infoprompt_released", "pez")
EXTRA_METHODS = ("pin_init",)       # run only when named in --methods
# soft_prompt.BaselineConfig fields of each gradient baseline (the rest: the launcher's defaults).
# infoprompt_released: the released architecture with its optimiser, as `--paper` sets it
# (hpprompt/launch/paper.py: AdamW 1e-3, weight decay 0.01, 6% warm-up + linear decay, batch 8,
# 30 epochs), on the CPU defaults' task LM, template and prompt length.
_RELEASED = {k: v for k, v in paper.PAPER["infoprompt"].items()
             if k in ("batch_size", "epochs", "learning_rate", "options")}
BASELINES = {"soft": {"method": "soft"}, "infoprompt": {"method": "infoprompt"},
             "infoprompt_released": {"method": "infoprompt", **_RELEASED},
             "pez": {"method": "pez"}}


@dataclasses.dataclass(frozen=True)
class GridConfig(user_data.DataFields):     # the user-data fields go to every cell
  datasets: tuple[str, ...] = ("sst-2", "mr", "cr")
  seeds: tuple[int, ...] = (0, 1, 2)
  methods: tuple[str, ...] = METHODS
  out: str = "runs/grid"
  only: tuple[str, ...] = ()          # glob patterns over cell names '<dataset>/<method>_seed<k>'
  shard: tuple[int, int] | None = None   # (i, n): cells i, i + n, ... of the grid (0 <= i < n)
  dataset_seed: int | None = None     # None: cell seed k uses few-shot split k
  data_dir: str | None = None
  task_lm: str = "smollm2"
  policy_lm: str = "smollm2"
  steps: int | None = None            # None: each launcher's CPU default (PIN 200, baselines 60)
  rlprompt_prompts_per_step: int | None = None   # None: the CPU default (its steps follow)
  fewshot_fields: dict = dataclasses.field(default_factory=dict)    # more FewShotConfig fields
  baseline_fields: dict = dataclasses.field(default_factory=dict)   # more BaselineConfig fields
  dry_run: bool = False
  report_only: bool = False           # write the report of the finished cells; run nothing
  report: bool = True
  readme: str | None = None           # also regenerate this file's report section
  report_dir: str | None = None       # default OUT/report (e.g. docs/results to commit it)


@dataclasses.dataclass(frozen=True)
class Cell:
  dataset: str
  method: str
  seed: int
  workdir: str
  config: object                      # the launcher's config (resume=False)
  manual: object = None               # pin_init: the manual cell's config of its data set, split

  @property
  def name(self) -> str:
    return f"{user_data.short_name(self.dataset)}/{self.method}_seed{self.seed}"


def fair_steps(reference_steps: int, reference_prompts_per_step: int,
               prompts_per_step: int) -> int:
  """Steps that score at least as many prompts as the reference run (equal when divisible)."""
  return math.ceil(reference_steps * reference_prompts_per_step / prompts_per_step)


# ---- cells ---------------------------------------------------------------------------------------

def _agent_config(cfg: GridConfig, method: str, **kw) -> fewshot.FewShotConfig:
  base = fewshot.FewShotConfig()
  fields = {"method": method, "task_lm": cfg.task_lm, "policy_lm": cfg.policy_lm,
            "data_dir": cfg.data_dir, "label": method, **user_data.fields(cfg),
            **cfg.fewshot_fields, **kw}
  agent = {**base.agent, **fields.pop("agent", {})}
  if method == "rlprompt" and cfg.rlprompt_prompts_per_step is not None:
    agent["prompts_per_step"] = cfg.rlprompt_prompts_per_step
  if cfg.steps is not None:
    fields.setdefault("steps", cfg.steps)
  return dataclasses.replace(base, agent=agent, **fields)


def _budget(cfg: GridConfig, dataset: str, seed: int, split: int) -> tuple[int, dict]:
  pin = _agent_config(cfg, "pin", dataset=dataset, seed=seed, dataset_seed=split)
  rl = _agent_config(cfg, "rlprompt", dataset=dataset, seed=seed, dataset_seed=split)
  pin_k = fewshot.agent_config(pin).prompts_per_step
  rl_k = fewshot.agent_config(rl).prompts_per_step
  steps = fair_steps(pin.steps, pin_k, rl_k)
  return steps, {"fair_budget": {
      "rule": "RLPrompt scores as many prompts with the task LM as PIN: steps = ceil(PIN steps x "
              "PIN prompts per step / RLPrompt prompts per step)",
      "pin_steps": pin.steps, "pin_prompts_per_step": pin_k, "rlprompt_prompts_per_step": rl_k,
      "rlprompt_steps": steps, "pin_prompts_scored": pin.steps * pin_k,
      "rlprompt_prompts_scored": steps * rl_k}}


def _baseline_config(cfg: GridConfig, method: str, **kw) -> soft_prompt.BaselineConfig:
  fields = {**BASELINES[method], "task_lm": cfg.task_lm, "data_dir": cfg.data_dir, "label": method,
            **user_data.fields(cfg), **cfg.baseline_fields, **kw}
  if cfg.steps is not None:
    fields["steps"], fields["epochs"] = cfg.steps, None
  # epochs (infoprompt_released) -> steps now, so that config, estimate and status agree
  return soft_prompt.resolve_epochs(soft_prompt.BaselineConfig(**fields))


def _config(cfg: GridConfig, dataset: str, method: str, seed: int, workdir: str):
  split = seed if cfg.dataset_seed is None else cfg.dataset_seed
  common = {"dataset": dataset, "seed": seed, "dataset_seed": split, "workdir": workdir}
  if method == "manual":
    return manual.ManualConfig(task_lm=cfg.task_lm, data_dir=cfg.data_dir, label=method,
                               **user_data.fields(cfg),
                               **{k: v for k, v in cfg.fewshot_fields.items()
                                  if k in ("template", "verbalizers", "dtype", "num_devices")},
                               **common)
  if method == "rlprompt":
    steps, notes = _budget(cfg, dataset, seed, split)
    return _agent_config(cfg, method, steps=steps, notes=notes, **common)
  if method == "pin_init":
    return _agent_config(cfg, "pin", label=method, **common)
  if method in AGENT_METHODS:
    return _agent_config(cfg, method, **common)
  return _baseline_config(cfg, method, **common)


def cells(cfg: GridConfig) -> list[Cell]:
  """Every cell of the grid (after `only`, then this process's `shard`), data set by data set, seed
  by seed."""
  out = []
  for dataset in cfg.datasets:
    for seed in cfg.seeds:
      for method in cfg.methods:
        workdir = os.path.join(cfg.out, user_data.short_name(dataset), f"{method}_seed{seed}")
        cell = Cell(dataset, method, seed, workdir, None)
        if cfg.only and not any(fnmatch.fnmatchcase(cell.name, p) for p in cfg.only):
          continue
        manual_dir = os.path.join(cfg.out, dataset, f"manual_seed{seed}")
        out.append(dataclasses.replace(
            cell, config=_config(cfg, dataset, method, seed, workdir),
            manual=_config(cfg, dataset, "manual", seed, manual_dir) if method == "pin_init"
            else None))
  return out if cfg.shard is None else out[cfg.shard[0]::cfg.shard[1]]


def parse_shard(text: str | None) -> tuple[int, int] | None:
  """'I/N' -> (I, N) with 0 <= I < N; FlagError('shard') otherwise."""
  if text is None:
    return None
  parts = text.split("/")
  try:
    i, n = (int(p) for p in parts) if len(parts) == 2 else (None, None)
  except ValueError:
    i = n = None
  if i is None or not 0 <= i < n:
    raise cli.FlagError("shard", f"must be I/N with 0 <= I < N (this process's share of N), "
                        f"got {text!r}.")
  return i, n


def check(cfg: GridConfig) -> None:
  """FlagError naming the first bad setting, before any model is loaded."""
  if cfg.report_only and (cfg.dry_run or not cfg.report):
    raise cli.FlagError("report_only", "writes the report and runs nothing: it cannot be combined "
                        "with " + ("--dry_run." if cfg.dry_run else "--noreport."))
  if cfg.report_only and cfg.shard is not None:
    raise cli.FlagError("shard", "--report_only reports the whole grid; run it without --shard.")
  for name in ("datasets", "seeds", "methods"):
    if not getattr(cfg, name):
      raise cli.FlagError(name, "give at least one.")
  for method in cfg.methods:
    if method not in METHODS + EXTRA_METHODS:
      raise cli.FlagError("methods", f"unknown method {method!r}; choose from "
                          f"{list(METHODS + EXTRA_METHODS)}.")
  few_shot = sorted(k for k in data.DATASETS if "/" not in k and "_" not in k)
  for dataset in cfg.datasets:
    if dataset not in few_shot and not user_data.is_user(dataset):
      raise cli.FlagError("datasets", f"unknown few-shot data set {dataset!r}; choose from "
                          f"{few_shot}.")
    for method in {"manual", "pin_init"} & set(cfg.methods):
      if not manual.bundled_prompts(dataset):
        raise cli.FlagError("datasets", f"no bundled manual prompts for {dataset!r} "
                            f"(hpprompt/data/manual_prompts.tsv); drop {method!r} from --methods.")
  bundled = [d for d in cfg.datasets if not user_data.is_user(d)]
  splits = cfg.seeds if cfg.dataset_seed is None else (cfg.dataset_seed,)
  for name, value in user_data.fields(cfg).items():
    if bundled and value is not None:
      raise cli.FlagError(name, f"only for your own data; {bundled[0]!r} is a bundled set.")
  for seed in splits if bundled else ():     # your own data: any seed draws its --shots
    if seed not in data.SEED_FOLDERS:
      flag = "seeds" if cfg.dataset_seed is None else "dataset_seed"
      raise cli.FlagError(flag, f"few-shot split {seed} does not exist (0-4); with seeds beyond "
                          "4 fix the split with --dataset_seed.")
  for dataset in sorted(set(cfg.datasets) - set(bundled)):   # your own data: read it first
    fewshot.load_data(_agent_config(cfg, "pin", dataset=dataset, dataset_seed=splits[0]))
  if cfg.steps is not None and cfg.steps < 1:
    raise cli.FlagError("steps", f"must be >= 1, got {cfg.steps}.")
  if cfg.rlprompt_prompts_per_step is not None and cfg.rlprompt_prompts_per_step < 1:
    raise cli.FlagError("rlprompt_prompts_per_step", "must be >= 1.")
  for pattern in cfg.only:
    if not cells(dataclasses.replace(cfg, only=(pattern,), shard=None)):
      raise cli.FlagError("only", f"{pattern!r} matches no cell (cells are named "
                          "'<dataset>/<method>_seed<k>', e.g. 'sst-2/pin_seed0' or 'mr/*').")
  for method in {"pin" if m == "pin_init" else m for m in cfg.methods} & {"pin", "rlprompt"}:
    fewshot.agent_config(_agent_config(cfg, method))


# ---- running -------------------------------------------------------------------------------------

def _log(out: str, record: dict) -> None:
  os.makedirs(out, exist_ok=True)
  writers.append_line(os.path.join(out, LOG), json.dumps(record))


def run_cell(cell: Cell) -> dict:
  """Runs (or resumes) one cell through its launcher; returns the launcher's results."""
  config = dataclasses.replace(cell.config, resume=bool(saved_steps(cell.workdir)))
  if cell.method == "manual":
    return manual.run(config)
  if cell.method == "pin_init":
    config = grid_init.resolve(config, cell.manual)
  if cell.method in AGENT_METHODS:
    return fewshot.run(config)
  return soft_prompt.run(config)


def _free() -> None:
  jax.clear_caches()
  gc.collect()


def command(cfg: GridConfig) -> str:
  """The grid command that regenerates a report of these cells (quoted in the report)."""
  parts = [f"--datasets={','.join(cfg.datasets)}", f"--seeds={','.join(map(str, cfg.seeds))}",
           f"--methods={','.join(cfg.methods)}", f"--out={cfg.out}"]
  parts += [f"--only={','.join(cfg.only)}"] if cfg.only else []
  parts += [f"--shard={cfg.shard[0]}/{cfg.shard[1]}"] if cfg.shard else []
  parts += [f"--dataset_seed={cfg.dataset_seed}"] if cfg.dataset_seed is not None else []
  parts += ["--report_only"] if cfg.report_only else []
  parts += [f"--report_dir={cfg.report_dir}"] if cfg.report_dir else []
  parts += [f"--readme={cfg.readme}"] if cfg.readme else []
  return "python experiments/results_grid.py " + " ".join(parts)


def write_report(cfg: GridConfig, finished: list[str]) -> None:
  """The report of the finished cells in OUT/report (and the README section with `readme`)."""
  out = cfg.report_dir or os.path.join(cfg.out, "report")
  try:
    sections = report_lib.write_report(finished, out, command=command(cfg))
  except runs_lib.NotARunError as e:
    raise cli.FlagError("out", str(e)) from e   # a cell directory damaged since it finished
  if cfg.readme:
    with cli.flag("readme"):
      report_lib.update_readme(cfg.readme, sections, out, command=command(cfg))


def run(cfg: GridConfig, print_fn=print) -> dict:
  """Runs every cell not done; returns {cell name: 'done' | 'skipped' | 'failed: ...'}."""
  check(cfg)
  grid = cells(cfg)
  if cfg.dry_run:
    for line in describe(cfg, grid):
      print_fn(line)
    return {c.name: status(c.workdir) for c in grid}
  if cfg.report_only:
    finished = [c.workdir for c in grid if status(c.workdir) == "done"]
    if not finished:
      raise cli.FlagError("report_only", f"no finished cell in {cfg.out} to report.")
    write_report(cfg, finished)
    print_fn(f"[grid] report of {len(finished)} finished cells (of {len(grid)}): "
             f"{os.path.join(cfg.report_dir or os.path.join(cfg.out, 'report'), 'report.md')}")
    return {c.name: status(c.workdir) for c in grid}
  if cfg.shard is None:
    cli.hold_dir(cfg.out, "out")        # one grid per --out at a time
  else:                                 # shards share --out; each holds its own share (cells: runs)
    cli.hold_dir(os.path.join(cfg.out, ".shards", "{}-of-{}".format(*cfg.shard)), "shard")
  outcome = {}
  for i, cell in enumerate(grid, 1):
    state = status(cell.workdir)
    if state == "done":
      outcome[cell.name] = "skipped"
      continue
    print_fn(f"[grid {i}/{len(grid)}] {cell.name}: "
             + ("resuming" if saved_steps(cell.workdir) else "starting") + f" -> {cell.workdir}")
    t0 = time.time()
    try:
      run_cell(cell)
    except (Interrupted, KeyboardInterrupt):
      _log(cfg.out, {"cell": cell.name, "status": "interrupted", "seconds": time.time() - t0})
      print_fn(f"[grid] interrupted in {cell.name}; run the same command again to resume it")
      raise
    except Exception as e:  # noqa: BLE001  (a failing cell is recorded; the grid goes on)
      message, _ = cli.error_line(e)
      _log(cfg.out, {"cell": cell.name, "status": "failed", "seconds": time.time() - t0,
                     "error": message})
      print_fn(f"[grid] {cell.name} failed: {message}")
      outcome[cell.name] = f"failed: {message}"
    else:
      _log(cfg.out, {"cell": cell.name, "status": "done", "seconds": time.time() - t0})
      outcome[cell.name] = "done"
    finally:
      _free()
  failed = [n for n, o in outcome.items() if o.startswith("failed")]
  print_fn(f"[grid] {sum(o == 'done' for o in outcome.values())} cells run, "
           f"{sum(o == 'skipped' for o in outcome.values())} already done, {len(failed)} failed"
           + (f": {failed}" if failed else ""))
  finished = [c.workdir for c in grid if status(c.workdir) == "done"]
  if cfg.shard is not None:
    print_fn(f"[grid] shard {cfg.shard[0]}/{cfg.shard[1]} finished; when every shard is, write the "
             f"report: {command(dataclasses.replace(cfg, shard=None, report_only=True))}")
  elif cfg.report and finished:
    write_report(cfg, finished)
    print_fn(f"[grid] report of {len(finished)} finished cells: "
             f"{os.path.join(cfg.report_dir or os.path.join(cfg.out, 'report'), 'report.md')}")
  return outcome
