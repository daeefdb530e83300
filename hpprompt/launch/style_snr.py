"""Is there a signal to learn? The style-transfer reward's spread across prompts against its noise.

Issue 21 asks, when no CPU-sized run learns style transfer, for the evidence instead: the reward's
signal-to-noise and a few hand-written style prompts against the null prompt. `measure(cfg)`
scores, on the direction's training sentences (the sources a run trains on):
  * `random_prompts` prompts drawn from the untrained agent (what a run's first steps see),
  * the null prompt "" and hand-written prompts (`--prompts`, default `HAND_WRITTEN`),
each on `sources` training sentences with `samples` top-k outputs, and on `greedy_sources`
sentences with one greedy output. The per-output reward is the training reward's
(content + 100 P(target style)) / 2; the random prompts' rewards are split into variance components
(`metrics.reward_variance`): the spread of prompts' true means against prompt x source interaction
and sampling noise, and the signal-to-noise of the (prompt, source) pair a training step compares.
Hand-written prompts are compared with the null prompt on the same sources (paired s.e.), under the
reward's classifier and under the separate judge (`tasks.style_judge`).
"""
import dataclasses

import jax
import numpy as np

from hpprompt.launch import cli
from hpprompt.launch import style_transfer
from hpprompt.launch import validate
from hpprompt.metrics import reward_variance
from hpprompt.report import trend
from hpprompt.tasks import style_judge
from hpprompt.tasks import style_transfer as st_task
from hpprompt.training import sharding

# Openings a reviewer of the target style might write; the template continues them with
# ` "{sentence}" "` (the launcher's), so each reads as a cue before the quoted rewrite.
HAND_WRITTEN = {
    "0to1": ("I loved this place! My glowing review:", "Positive review:",
             "Rewritten to sound happy and enthusiastic:"),
    "1to0": ("I hated this place! My angry review:", "Negative review:",
             "Rewritten to sound angry and disappointed:")}


@dataclasses.dataclass(frozen=True)
class RewardSNRConfig(style_transfer.StyleTransferConfig):
  random_prompts: int = 24
  sources: int = 12              # training sentences for the sampled outputs
  samples: int = 8               # top-k outputs per (prompt, source)
  greedy_sources: int = 48       # training sentences for the greedy outputs
  prompts: tuple[str, ...] | None = None
  output_json: str = "runs/style_snr/snr.json"


def _random_prompts(cfg, models, n: int) -> list[str]:
  agent_cfg = style_transfer.agent_config(cfg)
  agent = style_transfer.make_agent(cfg, models, agent_cfg, sharding.make_mesh(1))
  state, prompts = agent.init(cfg.seed), []
  while len(prompts) < n:
    state, rollout = agent.sample(state)
    prompts += agent.decode(rollout.tokens)
  return prompts[:n]


def _score(task, judge, prompts, sources, samples, key) -> dict:
  """Per-output reward under the reward classifier and under the judge: [P, M, S] arrays."""
  rewards, judged, outputs = [], [], []
  for i, source in enumerate(sources):
    texts, content, _, r, _ = task.pair_rewards(prompts, [source], jax.random.fold_in(key, i),
                                                samples, 1)
    flat = [t for per_prompt in texts for t in per_prompt[0]]
    p = judge.probs(flat)[:, task.target_label].reshape(len(prompts), samples)
    rewards.append(r[:, 0])
    judged.append(np.asarray(st_task.sample_rewards(content[:, 0], p)))
    outputs.append([per_prompt[0][0] for per_prompt in texts])
  return {"reward": np.stack(rewards, 1), "judge": np.stack(judged, 1),
          "examples": [[o[j] for o in outputs[:3]] for j in range(len(prompts))]}


def _summary(scores: dict, prompts: list[str], n_fixed: int, samples: int) -> dict:
  out = {}
  for name in ("reward", "judge"):
    r = scores[name]
    mean, se = reward_variance.prompt_means(r)
    rows = [{"prompt": p, "mean": float(m), "se": float(s)} for p, m, s in zip(prompts, mean, se)]
    for j in range(1, len(prompts)):
      d, d_se = reward_variance.paired_difference(r[j], r[0])
      rows[j].update(vs_null=d, vs_null_se=d_se)
    comps = reward_variance.variance_components(r[n_fixed:])
    out[name] = {"prompts": rows, "random_components": comps.as_dict((1, samples, 128)),
                 "random_mean": float(mean[n_fixed:].mean()),
                 "random_best": rows[n_fixed + int(np.argmax(mean[n_fixed:]))]}
  out["examples"] = {p: e for p, e in zip(prompts, scores["examples"])}
  return out


def measure(cfg: RewardSNRConfig) -> dict:
  cli.check_positive(cfg, ("random_prompts", "sources", "samples", "greedy_sources"))
  with cli.flag("random_prompts"):
    if cfg.random_prompts < 2:
      raise ValueError("needs at least 2 random prompts for their spread.")
  for name in ("sources", "greedy_sources"):
    with cli.flag(name):
      if getattr(cfg, name) < 2:
        raise ValueError("needs at least 2 sentences.")
  validate.directory(cfg.cache_dir, "cache_dir")
  validate.output_file(cfg.output_json, "output_json")
  data = style_transfer._data(cfg)
  hand = tuple(cfg.prompts) if cfg.prompts is not None else HAND_WRITTEN.get(cfg.direction, ())
  for p in hand:
    validate.text("prompts", p)
  with cli.flag("greedy_sources"):
    if max(cfg.sources, cfg.greedy_sources) > len(data.train):
      raise ValueError(f"the training pool has {len(data.train)} sentences.")
  models = style_transfer.load_models(cfg, {"policy_lm": cfg.policy_lm, "task_lm": cfg.task_lm,
                                            "content_lm": cfg.content_lm})
  task, info = style_transfer.build_task(cfg, models, data, cfg.cache_dir or "runs/style_snr")
  prompts = ["", *hand, *_random_prompts(cfg, models, cfg.random_prompts)]
  with cli.flag("prompts"):
    task.generator.check_length(prompts, data.train[:max(cfg.sources, cfg.greedy_sources)])
  judge = style_judge.fit_judge()
  key = jax.random.PRNGKey(cfg.seed)
  sampled = _score(task, judge, prompts, data.train[:cfg.sources], cfg.samples, key)
  task.generator = style_transfer.make_generator(dataclasses.replace(cfg, top_k=1), models,
                                                 lower=data.lower)
  greedy = _score(task, judge, prompts, data.train[:cfg.greedy_sources], 1, key)
  n_fixed = 1 + len(hand)
  results = {"direction": cfg.direction, "task": cfg.task, "top_k": cfg.top_k,
             "sampled": _summary(sampled, prompts, n_fixed, cfg.samples),
             "greedy": _summary(greedy, prompts, n_fixed, 1),
             "config": dataclasses.asdict(cfg), "components": info,
             "judge_heldout_accuracy": judge.info.get("heldout_accuracy")}
  validate.write_json(cfg.output_json, results, "output_json", shown={})
  return results


def markdown(results: list[dict]) -> str:
  """The report's tables: one block per direction."""
  lines = ["# The style-transfer reward's signal-to-noise (issue 21)", "",
           "Per-output reward (content + 100 P(target style)) / 2 on the direction's training "
           "sentences; `sd`: square roots of the variance components of the untrained agent's "
           "random prompts (hpprompt/metrics/reward_variance.py); pair SNR: sd_prompt^2 / "
           "(sd_interaction^2 + sd_sample^2 / n), one (prompt, sentence) pair with n outputs, the "
           "unit a training step compares. Prompts: mean ± s.e. over the sentences; vs null: "
           "paired difference ± s.e. Judge: the same content with the separate judge's "
           "P(target style). `python experiments/style_reward_snr.py --report=FILES`.", ""]
  for res in results:
    lines += [f"## {res['task']} {res['direction']}", ""]
    for mode, what in (("sampled", f"top-{res['top_k']} sampling"), ("greedy", "greedy")):
      s = res[mode]
      for clf in ("reward", "judge"):
        c = s[clf]["random_components"]
        k, m, n = c["shape"]
        snr = ", ".join(f"{c[key]:.3f} (n = {key.rsplit('_', 1)[1]})"
                        for key in sorted((k_ for k_ in c if k_.startswith("pair_snr_")),
                                          key=lambda k_: int(k_.rsplit("_", 1)[1])))
        lines.append(f"* {what}, {clf} classifier: {k} random prompts x {m} sources x {n} "
                     f"outputs; sd prompt {c['sd_prompt']:.2f}, source {c['sd_source']:.2f}, "
                     f"prompt x source {c['sd_interaction']:.2f}, sample {c['sd_sample']:.2f}; "
                     f"pair SNR {snr}.")
      lines += ["", f"| prompt ({what}) | reward | vs null | judge reward | vs null |",
                "| --- | ---: | ---: | ---: | ---: |"]
      rows_r, rows_j = s["reward"]["prompts"], s["judge"]["prompts"]
      n_fixed = len(rows_r) - s["reward"]["random_components"]["shape"][0]
      for j in range(n_fixed):
        lines.append(_row(rows_r[j], rows_j[j], repr(rows_r[j]["prompt"])))
      lines.append(f"| mean of the random prompts | {s['reward']['random_mean']:.2f} | | "
                   f"{s['judge']['random_mean']:.2f} | |")
      best = s["reward"]["random_best"]
      j = [r["prompt"] for r in rows_r].index(best["prompt"], n_fixed)
      lines.append(_row(rows_r[j], rows_j[j], f"best random {best['prompt']!r} (picked on "
                                              "these sources: optimistic)"))
      lines.append("")
  return "\n".join(lines)


def _row(r: dict, j: dict, label: str) -> str:
  diff = lambda x: (f"{x['vs_null']:+.2f} ± {x['vs_null_se']:.2f}" if "vs_null" in x else "—")
  return (f"| {label} | {r['mean']:.2f} ± {r['se']:.2f} | {diff(r)} | {j['mean']:.2f} ± "
          f"{j['se']:.2f} | {diff(j)} |")


# ---- did a run learn? (the training runs beside the measurement) ------------------------------

CURVE_KEYS = (("raw_reward", "reward"), ("content", "content"), ("style", "style (reward clf)"))


def learning(run_dirs: list[str]) -> dict:
  """Per run and per training metric (reward, content, style): first vs last 20% of steps with a
  bootstrap 95% interval, and the OLS slope's 95% interval (`report.trend`)."""
  out = {}
  for run in run_dirs:
    with cli.flag("runs"):
      series = {key: trend.step_rewards(run, key) for key, _ in CURVE_KEYS}
    out[run] = {key: {**trend.first_last(v), **trend.slope(v), "steps": len(v)}
                for key, v in series.items()}
  return out


def curves_figure(run_dirs: list[str], path: str, window: int = 25) -> None:
  """Moving averages of reward, content and style per step, one panel each, one line per run."""
  validate.output_file(path, "figure")
  from matplotlib.figure import Figure  # noqa: PLC0415
  from hpprompt.report import figures  # noqa: PLC0415
  fig = Figure(figsize=(12, 3.4))
  axes = fig.subplots(1, len(CURVE_KEYS))
  for run in run_dirs:
    for ax, (key, label) in zip(axes, CURVE_KEYS):
      v = trend.step_rewards(run, key)
      ax.plot(np.arange(1, len(v) + 1), figures.moving_average(v, window),
              label=run.rstrip("/").rsplit("/", 1)[-1])
      ax.set_title(f"{label} (moving average of {window})")
      ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def learning_markdown(summary: dict) -> str:
  lines = ["| run | metric | first 20% | last 20% | change [bootstrap 95%] | slope x steps "
           "[95%] |", "| --- | --- | ---: | ---: | ---: | ---: |"]
  for run, per in summary.items():
    for key, label in CURVE_KEYS:
      s = per[key]
      gap = s["steps"] - s["steps_per_window"]
      lo, hi = s["bootstrap_95"]
      slo, shi = s["slope_95"]
      lines.append(f"| {run.rstrip('/').rsplit('/', 1)[-1]} | {label} | {s['first']:.1f} | "
                   f"{s['last']:.1f} | {s['difference']:+.1f} [{lo:+.1f}, {hi:+.1f}] | "
                   f"{s['slope'] * gap:+.1f} [{slo * gap:+.1f}, {shi * gap:+.1f}] |")
  return "\n".join(lines) + "\n"
