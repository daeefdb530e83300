"""Textual inversion with ground truth: do PIN, RLPrompt and PEZ name what a held-out image shows?

The CLIP is the synthetic one of `hpprompt.launch.synthetic_clip` (its `clip/synthetic.json` says
how to re-render its held-out split). The first `targets` held-out images are written as PNGs and
each method inverts them through the textual-inversion launcher itself
(`launch.textual_inversion.run`, one run per method and seed; the agent / PEZ loops are not
copied). Every method gets the same budget, counted in prompts the CLIP scores while searching:
the agent scores `prompts_per_step` prompts per step for `agent_steps` steps, PEZ one prompt (with
its gradient) per step for `agent_steps * prompts_per_step` steps; all find prompts of
`prompt_length` tokens (policy tokens for the agent, CLIP tokens for PEZ).

Metric, on each target's best prompt (the launcher's rank-1 prompt): attribute recovery
(`synthetic_shapes.recovered`): the prompt names the image's colour and no other colour, the same
for its shape, and both together, against chance (one uniform guess: 1/#colours, 1/#shapes,
1/(#colours x #shapes)); background and position too; and the prompt's CLIP score beside the
score of the image's true caption. Per seed the rates are means over targets; the table gives the
mean over seeds, its standard error and a 95% t-interval (n = #seeds).

`run` writes to `out`: `recovery.json` (everything, per seed and per target), `recovery.md` (the
table) and `contact_sheet.png` (each target, its true caption and every method's prompt for the
first seed). Run directories (checkpoints, metrics) go to `runs_dir`; an interrupted run continues
where it stopped when called again (finished method-seed runs are read back, unfinished ones
resumed by the launcher's --resume).
"""
import dataclasses
import json
import os
import time

import numpy as np

from hpprompt.launch import contact_sheet
from hpprompt.launch import cli
from hpprompt.launch import synthetic_clip
from hpprompt.launch import textual_inversion as ti_launch
from hpprompt.tasks import synthetic_shapes as shapes

AGENT_METHODS = ("pin", "rlprompt")
METRICS = ("colour", "shape", "both", "background", "position")


@dataclasses.dataclass(frozen=True)
class RecoveryConfig:
  clip: str = "runs/synthetic_clip/clip"     # a synthetic_clip model directory
  out: str = "runs/ti_recovery"              # reports
  runs_dir: str | None = None                # run directories (default: <out>/runs)
  methods: tuple = ("pin", "rlprompt", "pez")
  seeds: tuple = (0, 1, 2)
  targets: int = 4
  prompt_length: int = 4
  agent_steps: int = 20
  prompts_per_step: int = 16
  evaluations: int = 4                       # validations / PEZ projections scored per run
  # PEZ's CLIP config draws its start rows uniformly over the 49,408 ids ('vocab'); in the
  # synthetic CLIP all but the caption tokens' rows are zero, so every seed would start from the
  # zero prompt and follow the same path. 'uniform' starts from seeded random vectors.
  pez_init: str = "uniform"
  policy_lm: str = "smollm2"

  @property
  def budget(self) -> int:
    """Prompts scored by the CLIP during one search (per target)."""
    return self.agent_steps * self.prompts_per_step


def chance() -> dict:
  c = {a: shapes.chance(a) for a in shapes.ATTRIBUTES}
  c["both"] = c["colour"] * c["shape"]
  return c


def launcher_config(cfg: RecoveryConfig, method: str, seed: int, image_dir: str,
                    workdir: str) -> ti_launch.TextualInversionConfig:
  """The textual-inversion launcher's config for one method and seed at the shared budget."""
  if method == "pez":
    steps, agent = cfg.budget, {}
    pez = {"prompt_length": cfg.prompt_length, "init": cfg.pez_init}
  elif method in AGENT_METHODS:
    steps, pez = cfg.agent_steps, {}
    agent = {**ti_launch.CPU_AGENT_OVERRIDES, "prompt_length": cfg.prompt_length,
             "prompts_per_step": cfg.prompts_per_step}
  else:
    raise ValueError(f"unknown method {method!r}; choose from pez, {', '.join(AGENT_METHODS)}.")
  every = max(1, steps // cfg.evaluations)
  return ti_launch.TextualInversionConfig(
      method=method, image=image_dir, clip=cfg.clip, policy_lm=cfg.policy_lm, agent=agent,
      pez=pez, steps=steps, eval_every=every, log_every=every, checkpoint_every=steps,
      seed=seed, workdir=workdir, resume=os.path.isdir(workdir) and bool(os.listdir(workdir)),
      top_prompts=1)


def write_targets(cfg: RecoveryConfig, directory: str) -> list[tuple[str, shapes.Attributes,
                                                                       np.ndarray]]:
  """The first `cfg.targets` held-out images as PNGs: [(path, attributes, image)]."""
  from PIL import Image  # noqa: PLC0415
  held = synthetic_clip.heldout(synthetic_clip.read_settings(cfg.clip), cfg.targets)
  os.makedirs(directory, exist_ok=True)
  out = []
  for i, (image, attrs) in enumerate(zip(held.images, held.attributes)):
    path = os.path.join(directory, f"{i:02d}.png")
    Image.fromarray(image).save(path)
    out.append((path, attrs, image))
  return out


def run_method(cfg: RecoveryConfig, method: str, seed: int, image_dir: str, log=print) -> dict:
  """The launcher's results.json of one method and seed (run, resumed or read back)."""
  workdir = os.path.join(cfg.runs_dir or os.path.join(cfg.out, "runs"), f"{method}-seed{seed}")
  done = os.path.join(workdir, "results.json")
  earlier = 0.0
  if os.path.exists(done):
    with open(done) as f:
      results = json.load(f)
    if len(results["targets"]) == cfg.targets:
      return results
    earlier = results.get("wall_seconds") or 0.0   # more targets now: the launcher's --resume
  t0 = time.time()                                 # skips the finished ones
  results = ti_launch.run(launcher_config(cfg, method, seed, image_dir, workdir))
  results["wall_seconds"] = earlier + time.time() - t0
  with open(done, "w") as f:     # again, with the wall time
    json.dump(results, f, indent=2)
  log(f"{method} seed {seed}: {results['wall_seconds']:.0f}s")
  return results


def score_targets(results: dict, targets) -> list[dict]:
  """Per target: the best prompt, its CLIP score and which attributes it recovers."""
  rows = []
  for (path, attrs, _), t in zip(targets, results["targets"]):
    if os.path.basename(t["target"]) != os.path.basename(path):
      raise ValueError(f"target order differs: {t['target']} vs {path}.")
    best = t["best"] or {"prompt": "", "clip_score": float("nan")}
    rows.append({"target": os.path.basename(path), "truth": attrs.as_dict(),
                 "prompt": best["prompt"], "clip_score": best["clip_score"],
                 "perplexity": best.get("perplexity", float("nan")),
                 "recovered": shapes.recovered(best["prompt"], attrs)})
  return rows


def summarize(values: list[float]) -> dict:
  """Mean, standard error and 95% t-interval over seeds."""
  from scipy import stats  # noqa: PLC0415
  x = np.asarray(values, float)
  mean = float(x.mean())
  se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
  half = float(stats.t.ppf(0.975, len(x) - 1) * se) if len(x) > 1 else float("nan")
  return {"mean": mean, "se": se, "ci95": [mean - half, mean + half], "per_seed": x.tolist()}


def true_caption_scores(cfg: RecoveryConfig, targets) -> list[float]:
  """CLIP score of each target's canonical caption (what a perfect inversion would reach)."""
  from hpprompt.models import clip_loader  # noqa: PLC0415
  from hpprompt.tasks import textual_inversion as ti_task  # noqa: PLC0415
  model, tokenizer, preprocess = clip_loader.load_clip(cfg.clip)
  scorer = ti_task.CLIPScorer(model, tokenizer, preprocess=preprocess)
  embeds = scorer.image_embeds([im for _, _, im in targets])
  text = scorer.text_embeds([a.caption(0) for _, a, _ in targets])
  return [float(x) for x in np.sum(embeds * text, axis=1)]


def table(report: dict) -> str:
  c = report["chance"]
  head = ("| method | colour | shape | colour & shape | background | position | CLIP score |\n"
          "| --- | --- | --- | --- | --- | --- | --- |\n")
  cell = lambda s: f"{s['mean']:.2f} ± {s['se']:.2f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"
  rows = [f"| {m} | " + " | ".join(cell(r[k]) for k in (*METRICS, "clip_score")) + " |"
          for m, r in report["methods"].items()]
  rows.append("| chance | " + " | ".join(f"{c[k]:.3f}" for k in METRICS) + " | |")
  true = np.mean(report["true_caption_scores"])
  rows.append(f"| true caption | 1 | 1 | 1 | 1 | 1 | {true:.3f} |")
  return head + "\n".join(rows) + "\n"


def _training_summary(clip_dir: str) -> dict | None:
  path = os.path.join(os.path.dirname(os.path.normpath(clip_dir)), "training.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def markdown(report: dict, training: dict | None) -> str:
  """recovery.md: the CLIP's retrieval, the settings, the table and every seed's prompts."""
  c = report["config"]
  lines = ["# Textual inversion with ground truth (issue #21)", ""]
  if training:
    f = training["final"]
    tc = training["config"]
    lines += [f"CLIP: `{c['clip']}`, trained by `experiments/train_synthetic_clip.py` "
              f"({tc['train_images']} training renders, {tc['steps']} steps, "
              f"{training['seconds']:.0f} s). Held-out image->caption top-1 "
              f"**{f['retrieval_top1']:.3f}** against chance {f['retrieval_chance']:.4f} "
              f"({training['candidates']} captions, {tc['heldout_images']} held-out renders); "
              f"the top caption's colour {f['retrieval_colour']:.3f}, shape "
              f"{f['retrieval_shape']:.3f}, background {f['retrieval_background']:.3f}, position "
              f"{f['retrieval_position']:.3f}.", ""]
  lines += [f"Each method inverts the first {c['targets']} held-out images, seeds "
            f"{', '.join(map(str, c['seeds']))}; prompts of {c['prompt_length']} tokens; budget "
            f"{report['config']['budget_prompts_scored']} prompts scored by the CLIP per image "
            f"(agents: {c['agent_steps']} steps x {c['prompts_per_step']} prompts, policy "
            f"`{c['policy_lm']}`; PEZ: {report['config']['budget_prompts_scored']} projected-"
            f"gradient steps, init `{c['pez_init']}`). Recovery: the best prompt names the "
            "image's value and no other value of the attribute. Cells: mean over seeds ± "
            "standard error [95% t-interval].",
            "", table(report), "", "Wall seconds per run (all targets): " + "; ".join(
                f"{m} {', '.join(f'{w:.0f}' for w in r['wall_seconds'] if w is not None)}"
                for m, r in report["methods"].items()), "", "## Prompts", "",
            "| target (true caption) | " + " | ".join(
                f"{m} seed {s}" for m in report["methods"] for s in c["seeds"]) + " |",
            "| --- |" + " --- |" * (len(report["methods"]) * len(c["seeds"]))]
  for i, t in enumerate(report["targets"]):
    cells = []
    for m, r in report["methods"].items():
      for s in c["seeds"]:
        row = r["per_seed"][str(s)][i]
        mark = "".join(k[0].upper() for k in ("colour", "shape") if row["recovered"][k])
        text = row["prompt"].strip().replace("|", "\\|").replace("`", "'")
        cells.append(f"`{text}` {row['clip_score']:.2f} {mark}".strip())
    lines.append(f"| {t['target']} ({t['caption']}) | " + " | ".join(cells) + " |")
  lines += ["", "C / S: the prompt recovers the colour / the shape. Numbers: CLIP score of the "
            "prompt.", "", "Reproduce (CLIP, then the searches; also writes this file): "
            "`bash benchmarks/run_issue21_ti.sh`, i.e.", "", "```bash",
            "python experiments/train_synthetic_clip.py --out=runs/issue21_ti/synthetic_clip",
            f"python experiments/ti_recovery.py --clip=runs/issue21_ti/synthetic_clip/clip "
            f"--out=docs/textual_inversion --runs_dir=runs/issue21_ti/recovery "
            f"--methods={','.join(report['methods'])} --seeds={','.join(map(str, c['seeds']))} "
            f"--targets={c['targets']} --prompt_length={c['prompt_length']} "
            f"--agent_steps={c['agent_steps']} --prompts_per_step={c['prompts_per_step']} "
            f"--evaluations={c['evaluations']} --pez_init={c['pez_init']}", "```", ""]
  return "\n".join(lines)


def write_contact_sheet(path: str, targets, per_method: dict, seed: int) -> None:
  from PIL import Image  # noqa: PLC0415
  rows = []
  for i, (_, attrs, image) in enumerate(targets):
    big = np.asarray(Image.fromarray(image).resize((128, 128), Image.Resampling.NEAREST))
    records = []
    for method, by_seed in per_method.items():
      row = by_seed[seed][i]
      hits = sum(row["recovered"][k] for k in ("colour", "shape"))
      records.append({"prompt": f"{method}: {row['prompt']!r} ({hits}/2 of colour, shape)",
                      "clip_score": row["clip_score"], "perplexity": row["perplexity"]})
    rows.append((f"true: {attrs.caption(0)}", big, records))
  contact_sheet.write(path, rows)


def run(cfg: RecoveryConfig, log=print) -> dict:
  cli.check_positive(cfg, ("targets", "prompt_length", "agent_steps", "prompts_per_step",
                           "evaluations"))
  if not os.path.isdir(cfg.clip):
    raise cli.FlagError("clip", f"no CLIP directory {cfg.clip!r} (train one with "
                        "experiments/train_synthetic_clip.py).")
  os.makedirs(cfg.out, exist_ok=True)
  runs_dir = cfg.runs_dir or os.path.join(cfg.out, "runs")
  targets = write_targets(cfg, os.path.join(runs_dir, "targets"))
  per_method, walls = {}, {}
  for method in cfg.methods:
    per_method[method], walls[method] = {}, []
    for seed in cfg.seeds:
      results = run_method(cfg, method, seed, os.path.join(runs_dir, "targets"), log)
      per_method[method][seed] = score_targets(results, targets)
      walls[method].append(results.get("wall_seconds"))
  report = {"config": {**dataclasses.asdict(cfg), "budget_prompts_scored": cfg.budget},
            "chance": chance(), "true_caption_scores": true_caption_scores(cfg, targets),
            "targets": [{"target": os.path.basename(p), "truth": a.as_dict(),
                         "caption": a.caption(0)} for p, a, _ in targets],
            "methods": {}}
  for method, by_seed in per_method.items():
    entry = {k: summarize([np.mean([r["recovered"][k] for r in rows]) for rows in by_seed.values()])
             for k in METRICS}
    entry["clip_score"] = summarize([np.mean([r["clip_score"] for r in rows])
                                     for rows in by_seed.values()])
    entry["wall_seconds"] = walls[method]
    entry["per_seed"] = {str(s): rows for s, rows in by_seed.items()}
    report["methods"][method] = entry
  with open(os.path.join(cfg.out, "recovery.json"), "w") as f:
    json.dump(report, f, indent=2)
  md = markdown(report, _training_summary(cfg.clip))
  with open(os.path.join(cfg.out, "recovery.md"), "w") as f:
    f.write(md)
  write_contact_sheet(os.path.join(cfg.out, "contact_sheet.png"), targets, per_method,
                      cfg.seeds[0])
  log(table(report))
  return report


__all__ = ("RecoveryConfig", "chance", "run", "score_targets", "summarize", "table")
