"""A markdown report (tables + PNG figures) of run directories; the README's generated section.

`write_report(paths, out_dir)` writes `report.md`, one PNG per figure and `figures.json` (each
figure's series labels) into `out_dir`, one section per task. Tables: per method, mean ± standard
error over seeds of every test metric (results.json), the best prompt over seeds (by validation
score) with its perplexity, steps and training time; then one row per run with the raw values.
With several tasks, a summary comes first: each method's primary test metric per task (mean ± s.e.
over seeds, in %), their mean over tasks, and the median perplexity of its runs' best prompts.

Text from the runs' files (task, method, label, LM names, metric keys, prompts, directory names)
goes into the markdown escaped (`md_text`, `md_code`): on one line, with `|`, backquotes and HTML
tags escaped. Files are written with `writers.write_file` (a symbolic link
planted at report.md or a figure is replaced, not followed).
"""
import dataclasses
import io
import json
import os
import re

import numpy as np

from hpprompt.report import figures
from hpprompt.report import runs as runs_lib
from hpprompt.training.writers import write_file

BEGIN = "<!-- report:begin"
END = "<!-- report:end -->"


def fmt(value, digits: int = 4) -> str:
  return "—" if value is None else f"{value:.{digits}f}"


def fmt_mean_se(values, digits: int = 4) -> str:
  mean, se = runs_lib.mean_se(values)
  return fmt(mean, digits) if se is None else f"{fmt(mean, digits)} ± {fmt(se, digits)}"


def fmt_perplexity(value) -> str:
  if value is None:
    return "—"
  return f"{value:,.0f}" if value < 1e6 else f"{value:.2g}"


def fmt_seconds(value) -> str:
  if value is None:
    return "—"
  return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


_MD_ESCAPE = str.maketrans({c: "\\" + c for c in "\\|`<>"})


def md_text(value) -> str:
  """`value` as inline markdown text on one line (newlines and tabs become spaces: no heading or
  table row can start), with `\\`, `|` (a table's cell separator), backquotes (code spans) and
  `<`, `>` (HTML tags) backslash-escaped."""
  return " ".join(str(value).split()).translate(_MD_ESCAPE)


def md_code(value) -> str:
  """`value` as a markdown code span on one line (line breaks become spaces; other spaces stay):
  fenced by more backquotes than it holds in a row, `|` escaped (GitHub tables split cells at a
  bare `|`, also inside code spans)."""
  text = re.sub(r"[\r\n]+", " ", str(value)).replace("|", "\\|")
  longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
  fence = "`" * (longest + 1)
  pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) or not text else ""
  return f"{fence}{pad}{text}{pad}{fence}"


def fmt_prompt(prompt) -> str:
  if prompt is None:
    return "—"
  return md_code(json.dumps(prompt, ensure_ascii=False))


def slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "task"


def _table(header: list[str], rows: list[list[str]], text_columns: set) -> list[str]:
  align = ["---" if h in text_columns else "---:" for h in header]
  return ["| " + " | ".join(r) + " |" for r in [[md_text(h) for h in header], align] + rows]


def _best_run(group: list[runs_lib.RunData]) -> runs_lib.RunData:
  """The run whose best prompt has the highest validation score (the first on ties)."""
  def score(run):
    best = run.results.get("best")
    if isinstance(best, dict) and "score" in best:
      return float(best["score"])
    if run.results.get("best_dev") is not None:
      return float(run.results["best_dev"])
    return float(run.prompts[0]["score"]) if run.prompts else float("-inf")
  return max(group, key=score)


@dataclasses.dataclass
class Section:
  task: str
  groups: dict              # {method: [RunData]}
  metrics: list[str]        # test metrics of the task's runs, in order of appearance
  figures: dict             # {file name: [series labels]}


TRAIN_ACC_HEADER = "train acc. first → last 10%"
FLOPS_HEADER = "task-LM TFLOP"      # training's reward computation (the agents log `reward_flops`)


def fmt_first_last(group: list[runs_lib.RunData], key: str = "train_acc") -> str:
  """Mean over the group's runs of `key`'s mean over the first and the last 10% of training steps:
  a learning curve in one cell ('—' when no run logs it)."""
  pairs = [p for p in (r.first_last(key) for r in group) if p is not None]
  if not pairs:
    return "—"
  first, last = np.mean(pairs, axis=0)
  return f"{first:.3f} → {last:.3f}"


def _section_markdown(section: Section, level: int, image_dir: str) -> list[str]:
  h = "#" * level
  out = [f"{h} {md_text(section.task)}", ""]
  header = ["method", "LMs", "seeds"] + section.metrics + ["best prompt", "perplexity", "steps",
                                                          TRAIN_ACC_HEADER, "train time"]
  rows = []
  for method, group in section.groups.items():
    best = _best_run(group)
    lms = ", ".join(dict.fromkeys(v for r in group for v in r.lms.values()))
    rows.append([md_text(method), md_text(lms), md_text(", ".join(str(r.seed) for r in group))]
                + [fmt_mean_se([r.test_metrics[m] for r in group if m in r.test_metrics])
                   if any(m in r.test_metrics for r in group) else "—" for m in section.metrics]
                + [fmt_prompt(best.best_prompt), fmt_perplexity(best.perplexity),
                   str(best.steps), fmt_first_last(group),
                   fmt_seconds(runs_lib.mean_se([r.train_seconds for r in group
                                                 if r.train_seconds is not None])[0]
                               if any(r.train_seconds is not None for r in group) else None)])
  out += _table(header, rows, {"method", "LMs", "seeds", "best prompt"}) + [""]
  out.append("Test metrics and curves: mean ± standard error over seeds (bands in the figures); "
             "best prompt: the highest validation score over seeds, with its perplexity. Runs:")
  out.append("")
  flops = any(r.total("reward_flops") for g in section.groups.values() for r in g)
  header = (["run", "method", "seed", "validation"] + section.metrics
            + ["best prompt", "perplexity", "steps"] + [FLOPS_HEADER] * flops + ["train time"])
  rows = []
  for method, group in section.groups.items():
    for r in group:
      tflop = r.total("reward_flops")
      rows.append([md_code(r.name), md_text(method), md_text(r.seed),
                   md_text(r.validation_metric or "—")]
                  + [fmt(r.test_metrics.get(m)) for m in section.metrics]
                  + [fmt_prompt(r.best_prompt), fmt_perplexity(r.perplexity), str(r.steps)]
                  + [fmt(tflop / 1e12 if tflop else None, 1)] * flops
                  + [fmt_seconds(r.train_seconds)])
  out += _table(header, rows, {"run", "method", "seed", "validation", "best prompt"}) + [""]
  for name in section.figures:
    out.append(f"![{name}]({image_dir}{name})")
  return out + [""]


def summary_markdown(sections: list[Section], level: int) -> list[str]:
  """One row per method: its primary (first) test metric on every task, mean ± s.e. over seeds in
  %; the mean of those over tasks (only for a method that has them all); the median perplexity of
  its runs' best prompts (perplexities span orders of magnitude: a mean would be one run's)."""
  tasks = [s for s in sections if s.metrics]
  methods = list(dict.fromkeys(m for s in tasks for m in s.groups))
  header = (["method"] + [f"{s.task} ({s.metrics[0]})" for s in tasks]
            + ["mean over tasks", "seeds", "median perplexity"])
  rows = []
  for method in methods:
    cells, means, seeds, perplexities = [], [], set(), []
    for s in tasks:
      values = [r.test_metrics[s.metrics[0]] for r in s.groups.get(method, [])
                if s.metrics[0] in r.test_metrics]
      percent = [100.0 * v for v in values]
      cells.append(fmt_mean_se(percent, 1) if values else "—")
      if values:
        means.append(runs_lib.mean_se(percent)[0])
        seeds.add(len(values))
      perplexities += [r.perplexity for r in s.groups.get(method, []) if r.perplexity is not None]
    mean = f"{sum(means) / len(means):.1f}" if len(means) == len(tasks) else "—"
    median = fmt_perplexity(float(np.median(perplexities))) if perplexities else "—"
    rows.append([md_text(method)] + cells + [mean, "/".join(str(n) for n in sorted(seeds)),
                                             median])
  h = "#" * level
  return ([f"{h} all tasks", "", "Primary test metric in %: mean ± standard error over seeds "
           "(seeds: runs per task); per-task tables follow.", ""]
          + _table(header, rows, {"method", "seeds"}) + [""])


def validation_kind(key: str | None) -> str | None:
  """What a validation key measures: the agent's `dev_acc` and the baselines' `dev_accuracy` are
  both 'accuracy'; any other key (e.g. PIN's `dev_reward`) is its own kind."""
  if key in ("dev_acc", "dev_accuracy"):
    return "accuracy"
  return None if key is None else slug(key.removeprefix("dev_"))


def validation_kinds(keys: list[str]) -> list[str]:
  """The kinds of `keys`, accuracy first."""
  kinds = list(dict.fromkeys(validation_kind(k) for k in keys))
  return sorted(kinds, key=lambda k: k != "accuracy")


def build_sections(runs: list[runs_lib.RunData], out_dir: str) -> list[Section]:
  """Draws and saves every task's figures into out_dir; returns the sections."""
  sections = []
  for task, groups in runs_lib.group_runs(runs).items():
    metrics = list(dict.fromkeys(m for g in groups.values() for r in g for m in r.test_metrics))
    smooth = max(1, max(r.steps for g in groups.values() for r in g) // 25)
    validation = list(dict.fromkeys(r.validation_metric for g in groups.values() for r in g
                                    if r.validation_metric))
    drawn = {
        "reward": figures.curves(groups, lambda r: "raw_reward" if r.series("raw_reward")[0].size
                                 else None, "mean reward of the step's prompts",
                                 f"{task}: training reward (moving average of {smooth})", smooth),
    }
    for kind in validation_kinds(validation):   # one figure per kind of score: comparable axes
      keys = [k for k in validation if validation_kind(k) == kind]
      subset = {m: g for m, g in groups.items()
                if {validation_kind(r.validation_metric) for r in g} == {kind}}
      name = "validation" if kind == validation_kinds(validation)[0] else f"validation_{kind}"
      drawn[name] = figures.curves(subset, lambda r: r.validation_metric,
                                   "validation: " + ", ".join(keys),
                                   f"{task}: validation score of the current prompt")
    drawn.update({
        "test_vs_perplexity": figures.test_vs_perplexity(groups, metrics[0], task)
                              if metrics else None,
        "time": figures.timing(groups, f"{task}: time per step"),
    })
    saved = {}
    for kind, fig in drawn.items():
      if fig is None:
        continue
      name = f"{slug(task)}_{kind}.png"
      png = io.BytesIO()
      fig.savefig(png, format="png", dpi=110)
      write_file(os.path.join(out_dir, name), png.getvalue())
      saved[name] = figures.series_labels(fig)
    sections.append(Section(task, groups, metrics, saved))
  return sections


def render(sections: list[Section], *, level: int = 2, image_dir: str = "",
           command: str | None = None) -> str:
  lines = []
  if command:
    lines += [f"Generated by `{command}`; edit the runs, not this text.", ""]
  if sum(bool(s.metrics) for s in sections) > 1:
    lines += summary_markdown(sections, level)
  for section in sections:
    lines += _section_markdown(section, level, image_dir)
  return "\n".join(lines).rstrip() + "\n"


def write_report(paths: list[str], out_dir: str, *, command: str | None = None) -> list[Section]:
  """Reads the runs (NotARunError for a directory that is not one) and writes the report."""
  runs = [runs_lib.load_run(p) for p in paths]
  os.makedirs(out_dir, exist_ok=True)
  sections = build_sections(runs, out_dir)
  write_file(os.path.join(out_dir, "report.md"),
             "# Run report\n\n" + render(sections, command=command))
  write_file(os.path.join(out_dir, "figures.json"),
             json.dumps({n: labels for s in sections for n, labels in s.figures.items()}, indent=2))
  return sections


def update_readme(readme: str, sections: list[Section], out_dir: str,
                  command: str | None = None) -> None:
  """Replaces the text between the README's report markers by the report (headings level 3)."""
  with open(readme) as f:
    text = f.read()
  start, end = text.find(BEGIN), text.find(END)
  if start < 0 or end < start:
    raise ValueError(f"{readme} has no '{BEGIN} ... -->' ... '{END}' markers.")
  start = text.index("-->", start) + len("-->")
  image_dir = os.path.relpath(out_dir, os.path.dirname(os.path.abspath(readme))) + "/"
  body = render(sections, level=4, image_dir=image_dir, command=command)
  write_file(readme, text[:start] + "\n" + body + text[end:])
