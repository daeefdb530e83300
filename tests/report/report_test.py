"""Run reports: table values against the runs' files, figures (valid PNGs, one series per method or
timing phase), sections per task, refusal of non-run directories."""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hpprompt.agent import trainer
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import report as report_launcher
from hpprompt.report import report
from hpprompt.report import runs as runs_lib
from hpprompt.tasks import data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tables(markdown: str, section: str) -> list[list[dict]]:
  """The markdown tables of one section (between its heading and the next) as lists of rows."""
  text = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
  tables, current = [], []
  for line in text.splitlines() + [""]:
    if line.startswith("|"):
      current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    elif current:
      header, rows = current[0], current[2:]
      tables.append([dict(zip(header, r)) for r in rows])
      current = []
  return tables


def _check_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == PNG_MAGIC
  with Image.open(path) as im:
    im.verify()


def _fake_run(path, *, task, method, seed, steps, rng, test=True, perplexity=True):
  """A run directory as the launchers write it, with random numbers."""
  os.makedirs(path)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump({"dataset": task, "method": method, "seed": seed, "task_lm": "lm-a",
               "policy_lm": "lm-b", "steps": steps}, f)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    for step in range(1, steps + 1):
      record = {"step": step, "raw_reward": float(rng.normal()), "train_acc": float(rng.uniform()),
                "reward_flops": float(rng.uniform(0, 1e13)), "time_sample": 0.1,
                "time_reward": float(rng.uniform(0.2, 0.3)), "time_learn": 0.05}
      if step % 2 == 0:
        record.update(greedy_prompt="abc", dev_acc=float(rng.uniform()))
      f.write(json.dumps(record) + "\n")
  best = {"prompt": f"p{seed}", "score": float(rng.uniform()), "step": 2}
  if perplexity:
    best["perplexity"] = float(rng.uniform(10, 1e4))
  results = {"steps": steps, "train_seconds": float(rng.uniform(10, 100)), "best": best,
             "top_prompts": [best]}
  if test:
    results.update(test_accuracy=float(rng.uniform()), test_f1=float(rng.uniform()))
  with open(os.path.join(path, "results.json"), "w") as f:
    json.dump(results, f)
  return results


def test_tables_and_figures_from_files(tmp_path):
  rng = np.random.default_rng(0)
  specs = [("sst-2", "pin", 0), ("sst-2", "pin", 1), ("sst-2", "pin", 2), ("sst-2", "rlprompt", 0),
           ("agnews", "pin", 0)]
  paths, results = [], {}
  for task, method, seed in specs:
    path = str(tmp_path / f"{task}_{method}_{seed}")
    results[path] = _fake_run(path, task=task, method=method, seed=seed, steps=6, rng=rng)
    paths.append(path)
  out = str(tmp_path / "out")
  sections = report.write_report(paths, out)
  assert [s.task for s in sections] == ["sst-2", "agnews"]
  markdown = open(os.path.join(out, "report.md")).read()
  summary, per_run = _tables(markdown, "sst-2")
  pin = [results[p] for p in paths[:3]]
  for metric in ("test_accuracy", "test_f1"):
    values = np.asarray([r[metric] for r in pin])
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(3)   # sample std / sqrt(n)
    assert summary[0][metric] == f"{mean:.4f} ± {se:.4f}"
    assert summary[1][metric] == f"{results[paths[3]][metric]:.4f}"   # one seed: no s.e.
  best = max(pin, key=lambda r: r["best"]["score"])
  assert summary[0]["best prompt"] == f'`"{best["best"]["prompt"]}"`'
  assert summary[0]["seeds"] == "0, 1, 2" and summary[0]["LMs"] == "lm-b, lm-a"
  assert [r["run"] for r in per_run] == [f"`{os.path.basename(p)}`" for p in paths[:4]]
  for row, path in zip(per_run, paths[:4]):
    assert row["test_accuracy"] == f"{results[path]['test_accuracy']:.4f}"
    assert row["validation"] == "dev_acc" and row["steps"] == "6"
  labels = json.load(open(os.path.join(out, "figures.json")))
  assert labels["sst-2_reward.png"] == ["pin (n=3)", "rlprompt (n=1)"]
  assert labels["sst-2_validation.png"] == ["pin (n=3)", "rlprompt (n=1)"]
  assert labels["sst-2_test_vs_perplexity.png"] == ["pin", "rlprompt"]
  assert labels["sst-2_time.png"] == ["sample", "reward", "learn"]
  assert len(labels["agnews_reward.png"]) == 1
  for name in labels:
    _check_png(os.path.join(out, name))
    assert f"({name})" in markdown


def test_band_is_mean_and_standard_error(tmp_path):
  rng = np.random.default_rng(1)
  paths = []
  for seed in range(3):
    paths.append(str(tmp_path / f"r{seed}"))
    _fake_run(paths[-1], task="t", method="m", seed=seed, steps=8, rng=rng)
  runs = [runs_lib.load_run(p) for p in paths]
  steps, mean, se = runs_lib.band(runs, "dev_acc")
  values = np.asarray([[json.loads(line)["dev_acc"]
                         for line in open(os.path.join(p, "metrics.jsonl")) if "dev_acc" in line]
                        for p in paths])
  np.testing.assert_array_equal(steps, [2, 4, 6, 8])
  np.testing.assert_allclose(mean, values.mean(0))
  np.testing.assert_allclose(se, values.std(0, ddof=1) / np.sqrt(3))


def test_moving_average_against_loop():
  from hpprompt.report import figures  # noqa: PLC0415
  x = np.random.default_rng(2).normal(size=23)
  want = [x[max(0, i - 4):i + 1].mean() for i in range(len(x))]
  np.testing.assert_allclose(figures.moving_average(x, 5), want)


def test_readme_section_replaced_between_markers(tmp_path):
  rng = np.random.default_rng(3)
  _fake_run(str(tmp_path / "runs" / "a"), task="t", method="m", seed=0, steps=4, rng=rng)
  readme = tmp_path / "README.md"
  readme.write_text("intro\n<!-- report:begin (generated) -->\nold\n<!-- report:end -->\nrest\n")
  report_launcher.run(report_launcher.ReportConfig(runs=(str(tmp_path / "runs" / "*"),),
                                                   out=str(tmp_path / "docs"),
                                                   readme=str(readme)))
  text = readme.read_text()
  assert text.startswith("intro\n<!-- report:begin (generated) -->\n") and text.endswith(
      "<!-- report:end -->\nrest\n")
  assert "old" not in text and "#### t" in text and "](docs/t_reward.png)" in text


def test_refuses_a_directory_that_is_not_a_run(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(cli.FlagError, match="--runs: .*empty is not a run directory"):
    report_launcher.run(report_launcher.ReportConfig(runs=(str(tmp_path / "empty"),),
                                                     out=str(tmp_path / "out")))
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "report.py"),
                         f"--runs={tmp_path / 'empty'}", f"--out={tmp_path / 'out'}"],
                        capture_output=True, text=True, cwd=REPO,
                        env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"error: --runs: {tmp_path / 'empty'} is not a run directory (no config.json or "
      "metrics.jsonl)."]
  # An unquoted glob expanded by the shell: the extra directories are refused, not dropped.
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "report.py"),
                         f"--runs={tmp_path / 'a'}", str(tmp_path / "b")],
                        capture_output=True, text=True, cwd=REPO,
                        env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 2 and proc.stderr.startswith("error: --runs: unexpected arguments")
  assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_of_two_tiny_seeds(tiny_gpt2_dir, tmp_path):
  """The issue's check: two tiny agent runs with different seeds, table against their files."""
  agent = dict(prompt_length=2, prompts_per_step=4, mlp_hidden=16, replay_batch=4,
               replay_capacity=32, filter_top_k=50)
  data_dir = tmp_path / "data" / "sst-2"     # the bundled split, and a 48-sentence test set
  shutil.copytree(os.path.join(data.bundled_root(), "sst-2", "16-100"), data_dir / "16-100")
  lines = open(os.path.join(data.bundled_root(), "sst-2", "test.tsv")).read().splitlines()
  (data_dir / "test.tsv").write_text("\n".join(lines[:49]) + "\n")
  cfg = fewshot.FewShotConfig(method="pin", task_lm=tiny_gpt2_dir, policy_lm=tiny_gpt2_dir,
                              source_token="<s>", agent=agent, steps=4, eval_every=2,
                              checkpoint_every=4, data_dir=str(tmp_path / "data"))
  agent_, task, models = fewshot.build(cfg)     # built once: the second seed reuses the compiles
  paths = []
  for seed in (0, 1):   # fewshot.run's steps after build, with the run's own seed
    paths.append(str(tmp_path / f"seed{seed}"))
    seed_cfg = dataclasses.replace(cfg, seed=seed, workdir=paths[-1], tensorboard=seed == 1)
    run = cli.open_run(seed_cfg, dataclasses.asdict(seed_cfg))
    results = trainer.train(agent_, task, run, trainer.TrainConfig(steps=4, eval_every=2,
                                                                   seed=seed))
    fewshot.add_perplexity(results, seed_cfg, models)
    run.finish(results)
  out = str(tmp_path / "report")
  report.write_report(paths, out)
  results = [json.load(open(os.path.join(p, "results.json"))) for p in paths]
  configs = [json.load(open(os.path.join(p, "config.json"))) for p in paths]
  assert [c["seed"] for c in configs] == [0, 1]
  markdown = open(os.path.join(out, "report.md")).read()
  summary, per_run = _tables(markdown, "sst-2")
  acc = np.asarray([r["test_accuracy"] for r in results])
  assert summary[0]["test_accuracy"] == f"{acc.mean():.4f} ± {acc.std(ddof=1) / np.sqrt(2):.4f}"
  assert summary[0]["seeds"] == "0, 1" and summary[0]["steps"] == "4"
  for row, r in zip(per_run, results):
    assert row["test_accuracy"] == f"{r['test_accuracy']:.4f}"
    prompt = json.dumps(r["best"]["prompt"], ensure_ascii=False)
    assert row["best prompt"].replace("\\|", "|").strip("` ") == prompt
    assert row["perplexity"] == report.fmt_perplexity(r["best"]["perplexity"])
    assert row["train time"] == report.fmt_seconds(r["train_seconds"])
  labels = json.load(open(os.path.join(out, "figures.json")))
  assert labels == {"sst-2_reward.png": ["pin (n=2)"], "sst-2_validation.png": ["pin (n=2)"],
                    "sst-2_test_vs_perplexity.png": ["pin"],
                    "sst-2_time.png": ["sample", "reward", "learn"]}
  for name in labels:
    _check_png(os.path.join(out, name))
  # --tensorboard (seed 1): the event file holds the metrics records' numbers.
  from tests.training.writers_test import logged  # noqa: PLC0415
  events = logged(paths[1])
  rows = [json.loads(line) for line in open(os.path.join(paths[1], "metrics.jsonl"))]
  assert {("raw_reward", r["step"]): pytest.approx(r["raw_reward"]) for r in rows} == {
      k: v for k, v in events.items() if k[0] == "raw_reward"}
  assert not any(n.startswith("events.") for n in os.listdir(paths[0]))


def test_reader_of_other_launchers_layouts(tmp_path):
  """Soft-prompt baselines (dev_<metric>, results' prompt / perplexity) and a task whose results
  have no test_ prefix (all numeric entries but bookkeeping are test metrics)."""
  soft = tmp_path / "soft"
  soft.mkdir()
  (soft / "config.json").write_text(json.dumps({"method": "pez", "dataset": "sst-2", "seed": 3,
                                                "task_lm": "smollm2"}))
  (soft / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
      {"step": 1, "loss": 0.5, "train_acc": 0.5, "time_step": 1.0},
      {"step": 2, "loss": 0.4, "train_acc": 0.6, "time_step": 3.0, "dev_accuracy": 0.7,
       "dev_mcc": 0.1, "prompt": "a b"}]))
  (soft / "results.json").write_text(json.dumps({
      "method": "pez", "steps": 2, "train_seconds": 4.0, "metric": "accuracy", "best_dev": 0.7,
      "best_step": 2, "prompt": "a b", "perplexity": 12.5, "test_accuracy": 0.625,
      "test_mcc": 0.25, "test_examples": 8, "eval_seconds": 1.0}))
  run = runs_lib.load_run(str(soft))
  assert run.validation_metric == "dev_accuracy" and run.best_prompt == "a b"
  assert run.test_metrics == {"test_accuracy": 0.625, "test_mcc": 0.25}
  assert run.perplexity == 12.5 and run.steps == 2 and run.train_seconds == 4.0
  assert run.timings() == {"step": 2.0} and run.lms == {"task_lm": "smollm2"}
  style = tmp_path / "style"
  style.mkdir()
  (style / "config.json").write_text(json.dumps({"task": "style_transfer", "dataset": "yelp",
                                                 "method": "pin", "seed": 0}))
  (style / "metrics.jsonl").write_text(json.dumps({"step": 1, "val_gm": 0.5}) + "\n")
  (style / "results.json").write_text(json.dumps({
      "steps": 1, "train_seconds": 2.0, "best_dev": 0.5, "content": 0.5, "style": 0.75, "J": 0.25, "bleu": 12.0,
      "test_examples": 10, "best_step": 1, "best": {"prompt": "x", "score": 0.5}}))
  run = runs_lib.load_run(str(style))
  assert run.task == "style_transfer (yelp)" and run.validation_metric == "val_gm"
  assert run.test_metrics == {"content": 0.5, "style": 0.75, "J": 0.25, "bleu": 12.0}
  sections = report.write_report([str(soft), str(style)], str(tmp_path / "out"))
  assert [s.task for s in sections] == ["sst-2", "style_transfer (yelp)"]
  assert sections[0].figures["sst-2_time.png"] == ["step"]
  assert "sst-2_reward.png" not in sections[0].figures        # no reward logged


def test_labels_manual_levels_and_one_validation_figure_per_kind(tmp_path):
  """The results grid's runs: `label` names the group (two InfoPrompt architectures apart), a run
  with nothing trained (manual, step 0) is a level line, dev accuracy and dev reward get separate
  figures (the agent's dev_acc and the baselines' dev_accuracy share one)."""
  rng = np.random.default_rng(3)
  paths = []
  for name, method, label, key in [("a0", "infoprompt", "infoprompt", "dev_accuracy"),
                                   ("a1", "infoprompt", "infoprompt", "dev_accuracy"),
                                   ("b0", "infoprompt", "infoprompt_released", "dev_accuracy"),
                                   ("c0", "pin", "pin", "dev_reward"),
                                   ("d0", "rlprompt", "rlprompt", "dev_acc")]:
    path = str(tmp_path / name)
    _fake_run(path, task="sst-2", method=method, seed=int(name[1]), steps=4, rng=rng)
    config = json.load(open(os.path.join(path, "config.json")))
    json.dump({**config, "label": label}, open(os.path.join(path, "config.json"), "w"))
    rows = [json.loads(line) for line in open(os.path.join(path, "metrics.jsonl"))]
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
      for r in rows:
        f.write(json.dumps({(key if k == "dev_acc" else k): v for k, v in r.items()}) + "\n")
    paths.append(path)
  for seed, acc in [(0, 0.6), (1, 0.8)]:       # manual: one record at step 0
    path = tmp_path / f"m{seed}"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"dataset": "sst-2", "method": "manual",
                                                  "label": "manual", "seed": seed,
                                                  "task_lm": "lm-a"}))
    (path / "metrics.jsonl").write_text(json.dumps({"step": 0, "dev_acc": acc}) + "\n")
    (path / "results.json").write_text(json.dumps({"steps": 0, "validation_metric": "dev_acc",
                                                   "best": {"prompt": "It was", "score": acc},
                                                   "test_accuracy": acc}))
    paths.append(str(path))
  sections = report.write_report(paths, str(tmp_path / "out"))
  assert list(sections[0].groups) == ["infoprompt", "infoprompt_released", "pin", "rlprompt",
                                      "manual"]
  assert [r.name for r in sections[0].groups["infoprompt"]] == ["a0", "a1"]
  figures = sections[0].figures
  assert figures["sst-2_validation.png"] == ["infoprompt (n=2)", "infoprompt_released (n=1)",
                                             "rlprompt (n=1)", "manual (n=2)"]
  assert figures["sst-2_validation_reward.png"] == ["pin (n=1)"]
  summary, _ = _tables(open(tmp_path / "out" / "report.md").read(), "sst-2")
  manual = next(r for r in summary if r["method"] == "manual")
  assert manual["test_accuracy"] == f"{0.7:.4f} ± {0.1:.4f}"     # mean, sample std / sqrt(2)
  # The manual level is drawn at the mean dev accuracy over seeds.
  runs = sections[0].groups["manual"]
  steps, mean, se = runs_lib.band(runs, "dev_acc")
  assert steps.tolist() == [0] and mean[0] == pytest.approx(0.7) and se[0] == pytest.approx(0.1)


def test_summary_over_tasks_in_percent_with_median_perplexity(tmp_path):
  rng = np.random.default_rng(3)
  specs = [(t, m, s) for t in ("sst-2", "mr") for m in ("pin", "manual") for s in (0, 1, 2)]
  specs += [("sst-2", "pez", 0)]                     # a method missing from one task
  paths, results = [], {}
  for task, method, seed in specs:
    path = str(tmp_path / f"{task}_{method}_{seed}")
    results[path] = _fake_run(path, task=task, method=method, seed=seed, steps=4, rng=rng)
    paths.append(path)
  report.write_report(paths, str(tmp_path / "out"))
  markdown = open(os.path.join(tmp_path / "out", "report.md")).read()
  (rows,) = _tables(markdown, "all tasks")
  assert [r["method"] for r in rows] == ["pin", "manual", "pez"]
  for row, method in zip(rows, ("pin", "manual")):
    means = []
    for task in ("sst-2", "mr"):
      values = 100 * np.asarray([results[p]["test_accuracy"] for p, spec in zip(paths, specs)
                                 if spec[:2] == (task, method)])
      mean, se = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
      assert row[f"{task} (test_accuracy)"] == f"{mean:.1f} ± {se:.1f}"
      means.append(mean)
    assert row["mean over tasks"] == f"{np.mean(means):.1f}" and row["seeds"] == "3"
    ppl = [results[p]["best"]["perplexity"] for p, spec in zip(paths, specs) if spec[1] == method]
    assert row["median perplexity"] == report.fmt_perplexity(float(np.median(ppl)))
  assert rows[2]["mr (test_accuracy)"] == "—" and rows[2]["mean over tasks"] == "—"
  assert rows[2]["sst-2 (test_accuracy)"] == f"{100 * results[paths[-1]]['test_accuracy']:.1f}"
  # training accuracy, first -> last 10% of 4 steps (one step each), mean over the three seeds
  pin_runs = [p for p, spec in zip(paths, specs) if spec[:2] == ("mr", "pin")]
  acc = np.asarray([[json.loads(line)["train_acc"] for line in open(os.path.join(p, "metrics.jsonl"))]
                    for p in pin_runs])
  per_task, _ = _tables(markdown, "mr")
  assert per_task[0][report.TRAIN_ACC_HEADER] == f"{acc[:, 0].mean():.3f} → {acc[:, -1].mean():.3f}"
  # the task-LM work of each run: the sum of its steps' reward_flops, in TFLOP
  _, per_run = _tables(markdown, "mr")
  row = next(r for r in per_run if r["run"] == f"`{os.path.basename(pin_runs[1])}`")
  flops = sum(json.loads(line)["reward_flops"] for line in open(os.path.join(pin_runs[1],
                                                                           "metrics.jsonl")))
  assert row[report.FLOPS_HEADER] == f"{flops / 1e12:.1f}"
  one_task = report.render(report.write_report(paths[:3], str(tmp_path / "one")))
  assert "all tasks" not in one_task                  # a single task needs no summary


def test_first_last_means_against_slices(tmp_path):
  rng = np.random.default_rng(4)
  path = str(tmp_path / "r")
  _fake_run(path, task="t", method="m", seed=0, steps=25, rng=rng)
  run = runs_lib.load_run(path)
  acc = np.asarray([json.loads(line)["train_acc"] for line in open(os.path.join(path, "metrics.jsonl"))])
  np.testing.assert_allclose(run.first_last("train_acc"), (acc[:2].mean(), acc[-2:].mean()))
  np.testing.assert_allclose(run.first_last("train_acc", 0.5), (acc[:12].mean(), acc[-12:].mean()))
  assert run.first_last("not_logged") is None
