"""Rescoring of the README's style-transfer table with a separate test judge (issue 21).

The table's Style was scored by the same classifier that rewarded the prompts in training
(`hpprompt/tasks/style_classifier.py`). This rescores its committed test outputs
(`docs/style_transfer/<prompt>.<direction>.json`, 500 outputs each, aligned with the test inputs)
with both that reward classifier and the judge of `hpprompt/tasks/style_judge.py` (hashed n-gram
logistic regression on a disjoint Yelp pool), and reports per row: Content (BERTScore as in the
table), Style under each classifier, their agreement (share of outputs given the same label),
J(C,S) = mean_i c_i s_i and GM(C,S) = (C S)^(1/2) under the judge, and the differences to the null
prompt of the same direction with paired bootstrap standard errors over the 500 inputs.
`experiments/rescore_style_judge.py` is the command line.
"""
import dataclasses
import json
import os

import numpy as np

from hpprompt.launch import cli
from hpprompt.launch import style_transfer
from hpprompt.metrics import style_transfer as st_metrics
from hpprompt.tasks import style_data
from hpprompt.tasks import style_judge
from hpprompt.training import writers

# (file name, label) of the table's rows, in its order; 'null' is the reference of the differences.
ROWS = ("null", "manual", "pin", "rlprompt")
LABELS = {"null": "null", "manual": "manual", "pin": "PIN", "rlprompt": "RLPrompt",
          "hand": "hand-written"}
DIRECTIONS = ("0to1", "1to0")


@dataclasses.dataclass(frozen=True)
class RescoreConfig:
  docs_dir: str = "docs/style_transfer"               # the table's <prompt>.<direction>.json files
  cache_dir: str = "runs/style_transfer_cache"        # the table's classifier / baseline cache
  output: str = "docs/style_transfer/judge_rescore"   # writes OUTPUT.json and OUTPUT.md
  bootstrap: int = 2000
  seed: int = 0
  rlprompt_released: bool = True     # also rescore RLPrompt's released outputs (no differences)
  rows: tuple[str, ...] = ROWS       # <row>.<direction>.json files; the first is the null prompt
  dtype: str = "float32"


def style_correct(probs: np.ndarray, target_label: int) -> np.ndarray:
  """[N] 1.0 where the classifier's argmax is the target style, else 0.0 (the evaluator's s_i)."""
  return (np.asarray(probs).argmax(1) == target_label).astype(np.float64)


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
  """Share of sentences to which two classifiers give the same label (argmax)."""
  return float((np.asarray(probs_a).argmax(1) == np.asarray(probs_b).argmax(1)).mean())


def joint_cs(content: np.ndarray, style_ok: np.ndarray) -> float:
  """J(C,S) = mean_i c_i s_i (content in [0, 100], s_i in {0, 1})."""
  return st_metrics.joint_score(content, style_ok)


def gm_cs(content: np.ndarray, style_ok: np.ndarray) -> float:
  """GM(C,S) = (mean c * 100 mean s)^(1/2), unrounded (the evaluator rounds C and S first)."""
  return st_metrics.geometric_mean(float(np.mean(content)), 100 * float(np.mean(style_ok)))


def paired_bootstrap(content_a, ok_a, content_b, ok_b, *, num: int = 2000,
                     seed: int = 0) -> dict:
  """Differences a - b of Style (%), J(C,S) and GM(C,S) between two rows on the same inputs, and
  their bootstrap standard errors: inputs resampled with replacement `num` times (the same
  resample for both rows), s.e. = standard deviation (ddof 1) of the resampled differences."""
  content_a, ok_a, content_b, ok_b = (np.asarray(v, np.float64)
                                      for v in (content_a, ok_a, content_b, ok_b))
  n = len(content_a)
  if not all(len(v) == n for v in (ok_a, content_b, ok_b)):
    raise ValueError("the two rows must score the same inputs.")
  idx = np.random.default_rng(seed).integers(0, n, (num, n))
  ca, sa, cb, sb = content_a[idx], ok_a[idx], content_b[idx], ok_b[idx]   # [num, n]
  resampled = {
      "style": 100 * (sa.mean(1) - sb.mean(1)),
      "joint_cs": (ca * sa).mean(1) - (cb * sb).mean(1),
      "gm_cs": (np.sqrt(ca.mean(1) * 100 * sa.mean(1))
                - np.sqrt(cb.mean(1) * 100 * sb.mean(1)))}
  point = {"style": 100 * (ok_a.mean() - ok_b.mean()),
           "joint_cs": joint_cs(content_a, ok_a) - joint_cs(content_b, ok_b),
           "gm_cs": gm_cs(content_a, ok_a) - gm_cs(content_b, ok_b)}
  return {k: {"diff": float(point[k]), "se": float(resampled[k].std(ddof=1))} for k in point}


def score_outputs(sources, outputs, target_label, scorer, reward_clf, judge) -> dict:
  """Per-sentence content, reward-classifier and judge probabilities of outputs of one row."""
  if len(outputs) != len(sources):
    raise ValueError(f"{len(outputs)} outputs for {len(sources)} inputs.")
  return {"content": st_metrics.content_scores(scorer, outputs, sources),
          "reward_probs": np.asarray(reward_clf.probs(outputs)),
          "judge_probs": np.asarray(judge.probs(outputs)), "target_label": target_label}


def summarise(scored: dict) -> dict:
  """The row's aggregates (unrounded) from `score_outputs`."""
  c, t = scored["content"], scored["target_label"]
  ok_r, ok_j = style_correct(scored["reward_probs"], t), style_correct(scored["judge_probs"], t)
  return {"content": float(c.mean()), "style_reward": 100 * float(ok_r.mean()),
          "style_judge": 100 * float(ok_j.mean()),
          "agreement": 100 * agreement(scored["reward_probs"], scored["judge_probs"]),
          "joint_cs_reward": joint_cs(c, ok_r), "gm_cs_reward": gm_cs(c, ok_r),
          "joint_cs_judge": joint_cs(c, ok_j), "gm_cs_judge": gm_cs(c, ok_j)}


def calibration(reward_clf, judge) -> list[dict]:
  """Each classifier's accuracy (%) on sentences of known style that neither trained on: the Yelp
  test inputs (their source style) and the human references (Li et al. 2018, the target style)."""
  out = []
  for direction in DIRECTIONS:
    data = style_data.load("yelp", direction)
    for name, texts, label in (("test inputs", data.test, data.source_label),
                               ("human references", data.references, data.target_label)):
      out.append({"direction": direction, "sentences": name, "label": label,
                  "reward_accuracy": 100 * float(style_correct(reward_clf.probs(texts),
                                                               label).mean()),
                  "judge_accuracy": 100 * float(style_correct(judge.probs(texts),
                                                              label).mean())})
  return out


def _rows(cfg: RescoreConfig, direction: str) -> list[tuple]:
  """(key, label, prompt, outputs, saved record or None) of a direction's rows."""
  rows = []
  for name in cfg.rows:
    label = LABELS.get(name, name)
    path = os.path.join(cfg.docs_dir, f"{name}.{direction}.json")
    with open(path) as f:
      saved = json.load(f)
    rows.append((name, label, saved.get("prompt"), saved["outputs"], saved))
  if cfg.rlprompt_released:
    outputs = style_data.read_lines(style_data.rlprompt_outputs(direction), "RLPrompt outputs")
    rows.append(("rlprompt_released", "RLPrompt's released outputs (GPT-2-xl)", None, outputs,
                 None))
  return rows


def rescore(cfg: RescoreConfig) -> dict:
  """Rescores every row of both directions; writes OUTPUT.json and OUTPUT.md; returns the record."""
  if cfg.bootstrap < 2:
    raise cli.FlagError("bootstrap", f"must be at least 2, not {cfg.bootstrap}.")
  if not cfg.rows or cfg.rows[0] != "null":
    raise cli.FlagError("rows", f"the first row must be null (the differences are to it); got "
                        f"{list(cfg.rows)}.")
  for name in cfg.rows:   # before any model is loaded
    for direction in DIRECTIONS:
      if not os.path.isfile(os.path.join(cfg.docs_dir, f"{name}.{direction}.json")):
        raise cli.FlagError("docs_dir", f"no {name}.{direction}.json in {cfg.docs_dir!r}.")
  eval_cfg = style_transfer.EvaluateConfig(cache_dir=cfg.cache_dir, test_limit=0,
                                           dtype=cfg.dtype)
  if eval_cfg.classifier_pool != style_judge.REWARD_POOL or eval_cfg.task != "yelp":
    raise ValueError("the judge pool is disjoint from the reward pool of 600 Yelp sentences per "
                     "style only.")
  judge = style_judge.fit_judge()
  print(f"judge: held-out accuracy {judge.info['heldout_accuracy']:.4f} "
        f"({judge.info['heldout_size']} sentences), fit on {judge.info['fit_size']}", flush=True)
  models = style_transfer.load_models(eval_cfg, {"task_lm": eval_cfg.task_lm})
  scorer, reward_clf, _, info = style_transfer.components(eval_cfg, models, cfg.cache_dir)
  record = {"judge": judge.info, "reward_classifier": info, "bootstrap": cfg.bootstrap,
            "seed": cfg.seed, "rows": []}
  record["calibration"] = calibration(reward_clf, judge)
  for direction in DIRECTIONS:
    data = style_data.load("yelp", direction)
    scored = {}
    for key, label, prompt, outputs, saved in _rows(cfg, direction):
      scored[key] = score_outputs(data.test, outputs, data.target_label, scorer, reward_clf,
                                  judge)
      row = {"direction": direction, "row": key, "found_by": label, "prompt": prompt,
             **summarise(scored[key])}
      if saved is not None:   # the table's own numbers, to check that the rescoring matches them
        row["table"] = {"content": saved["content"], "style": saved["style"],
                        "joint_cs": saved["joint_cs"], "gm_cs": saved["gm_cs"]}
      if key != "null" and saved is not None:
        t = data.target_label
        null, this = scored["null"], scored[key]
        for which in ("reward", "judge"):
          row[f"vs_null_{which}"] = paired_bootstrap(
              this["content"], style_correct(this[f"{which}_probs"], t),
              null["content"], style_correct(null[f"{which}_probs"], t),
              num=cfg.bootstrap, seed=cfg.seed)
      row["per_sentence"] = {
          "content": np.round(scored[key]["content"], 3).tolist(),
          "reward_label": scored[key]["reward_probs"].argmax(1).tolist(),
          "judge_label": scored[key]["judge_probs"].argmax(1).tolist()}
      record["rows"].append(row)
      print(f"{direction} {key}: " + ", ".join(
          f"{k} {row[k]:.1f}" for k in ("content", "style_reward", "style_judge", "agreement",
                                        "joint_cs_judge", "gm_cs_judge")), flush=True)
  writers.write_file(cfg.output + ".json", json.dumps(record, indent=1) + "\n")
  writers.write_file(cfg.output + ".md", markdown(record))
  return record


def _pm(entry: dict | None) -> str:
  return "—" if entry is None else f"{entry['diff']:+.1f} ± {entry['se']:.1f}"


def _table_check(rows: list[dict]) -> str:
  """A sentence on how far the recomputed reward-classifier numbers are from the table's."""
  pairs = [(r[k], r["table"][t]) for r in rows if "table" in r for k, t in (
      ("content", "content"), ("style_reward", "style"), ("joint_cs_reward", "joint_cs"),
      ("gm_cs_reward", "gm_cs"))]
  if not pairs:
    return ""
  worst = max(abs(round(a, 1) - b) for a, b in pairs)
  return (f" Recomputed here, the table's Content, Style, J(C,S) and GM(C,S) (reward classifier) "
          f"differ from the committed ones by at most {worst:.1f}.")


def markdown(record: dict) -> str:
  """The rescoring as a Markdown table (differences to the null prompt ± bootstrap s.e.)."""
  j = record["judge"]
  lines = [
      "# Style-transfer table rescored with a separate test judge (issue 21)", "",
      "Reward classifier: logistic head on SmolLM2 features (the table's Style, "
      f"held-out accuracy {100 * record['reward_classifier'].get('style_classifier_heldout_accuracy', float('nan')):.1f}%). "
      f"Judge: `hpprompt/tasks/style_judge.py`, {j['features']}, C = {j['c']:g}, fit on "
      f"{j['fit_size']} Yelp sentences disjoint from the reward pool and the test set, held-out "
      f"accuracy {100 * j['heldout_accuracy']:.1f}% ({j['heldout_size']} sentences). "
      "Content is the table's BERTScore (SmolLM2 layer 20). Differences are to the null prompt of "
      f"the same direction, ± paired bootstrap s.e. over the 500 inputs ({record['bootstrap']} "
      "resamples). Agreement: share of outputs the two classifiers give the same label."
      + _table_check(record["rows"]), "",
      "| direction | prompt | found by | Content | Style (reward clf) | Style (judge) | agreement "
      "| J(C,S) judge | GM(C,S) judge | ΔStyle reward clf | ΔStyle judge | ΔJ(C,S) judge "
      "| ΔGM(C,S) judge |",
      "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
  arrows = {"0to1": "neg -> pos", "1to0": "pos -> neg"}
  for r in record["rows"]:
    vr, vj = r.get("vs_null_reward"), r.get("vs_null_judge")
    prompt = ("—" if r["prompt"] is None
              else "`" + json.dumps(r["prompt"], ensure_ascii=False) + "`")
    if r["row"] == "manual":
      prompt += " + template"
    lines.append(
        f"| {arrows[r['direction']]} | {prompt} | {r['found_by']} | {r['content']:.1f} | "
        f"{r['style_reward']:.1f} | {r['style_judge']:.1f} | {r['agreement']:.1f} | "
        f"{r['joint_cs_judge']:.1f} | {r['gm_cs_judge']:.1f} | "
        f"{_pm(vr and vr['style'])} | {_pm(vj and vj['style'])} | "
        f"{_pm(vj and vj['joint_cs'])} | {_pm(vj and vj['gm_cs'])} |")
  if record.get("calibration"):
    lines += ["", "Accuracy of each classifier on Yelp sentences of known style that neither was "
              "trained on (the test inputs: their own style; the human references: the target "
              "style):", "",
              "| direction | sentences | label | reward clf | judge |",
              "| --- | --- | ---: | ---: | ---: |"]
    for r in record["calibration"]:
      lines.append(f"| {arrows[r['direction']]} | {r['sentences']} | {r['label']} | "
                   f"{r['reward_accuracy']:.1f} | {r['judge_accuracy']:.1f} |")
  return "\n".join(lines) + "\n"
