"""Unsupervised text style transfer as a prompt-optimisation task (RLPrompt §4.2, PIN §5.2).

Reward of a (prompt, source) pair, RLPrompt `tst_reward.py` (methods.md §2.2): the task LM draws
N = samples x bootstraps continuations; each gets
  r = (content + 100 P(target style | output)) / 2,  content = 100 max(BERTScore-F1(output,
  source), 0);
the N rewards are cut into `bootstraps` consecutive chunks, each chunk's max is kept, and the pair's
reward is the mean of those maxima. In training, rewards are z-scored per source sentence over all
the bootstrap maxima of the step's pairs with that source string (population std, + 1e-4; a
sentence drawn twice in one step is one group, as `input_rewards[src]` in RLPrompt's
tst_reward.py:108, 155-167), and the agent rescales the z-scores (RLPrompt: R = 100 z - 20).
Each step pairs its prompts with `sources_per_step` consecutive training sentences (RLPrompt: 2
sentences x 4 prompts, the file read in order).
Fluency is not in the training reward (either paper's code); it is an evaluation metric only.
"""
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from hpprompt.metrics import style_transfer as st_metrics
from hpprompt.tasks.base import StepRewards
from hpprompt.tasks.generation import Generator


def content_baseline(scorer, texts: list[str], key: dict, cache_dir: str) -> list[float]:
  """BERTScore's rescaling baseline measured like bert-score's: mean (P, R, F) of 256 random pairs
  of `texts` (seed 0) under `scorer`; kept in `cache_dir/content_baseline.json` under `key` and
  read from there when the key matches."""
  path = os.path.join(cache_dir, "content_baseline.json")
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved.get("key") == key:
      return saved["baseline"]
  rng = np.random.default_rng(0)
  a, b = rng.choice(len(texts), 256), rng.choice(len(texts), 256)
  baseline = scorer.score([texts[i] for i in a], [texts[j] for j in b]).mean(1).tolist()
  os.makedirs(cache_dir, exist_ok=True)
  with open(path, "w") as f:
    json.dump({"key": key, "baseline": baseline}, f)
  return baseline


def sample_rewards(content: jax.Array, style_prob: jax.Array) -> jax.Array:
  """(content + 100 p) / 2 per sample; content already in [0, 100]."""
  return (content + 100.0 * style_prob) / 2.0


def bootstrap_maxima(rewards_n: jax.Array, num_bootstraps: int) -> jax.Array:
  """[N] rewards of one pair -> [k] maxima of k consecutive equal chunks."""
  return rewards_n.reshape(num_bootstraps, -1).max(axis=1)


def source_zscores(maxima: jax.Array, source_ids: jax.Array, num_sources: int,
                   eps: float = 1e-4) -> jax.Array:
  """z-score of each pair's mean bootstrap max within its source sentence.

  maxima [P, k] bootstrap maxima of P pairs; source_ids [P] in [0, num_sources). The statistics of a
  source are over all maxima of its pairs (population std), as `_compute_reward_zscores`.
  """
  k = maxima.shape[1]
  count = jax.ops.segment_sum(jnp.full(maxima.shape[0], k, maxima.dtype), source_ids, num_sources)
  mean = jax.ops.segment_sum(maxima.sum(1), source_ids, num_sources) / count
  sq = jax.ops.segment_sum(((maxima - mean[source_ids][:, None]) ** 2).sum(1), source_ids,
                           num_sources) / count
  return (maxima.mean(1) - mean[source_ids]) / (jnp.sqrt(sq)[source_ids] + eps)


def source_groups(sources: list[str]) -> np.ndarray:
  """int [S]: one id per distinct source string (first-occurrence order), so that equal strings
  pool their maxima in `source_zscores` as RLPrompt's dict keyed by the string does."""
  first: dict[str, int] = {}
  return np.asarray([first.setdefault(s, len(first)) for s in sources], np.int32)


@dataclasses.dataclass
class StyleTransferTask:
  """Generator (task LM) + content scorer + style classifier, with the direction's sentences.

  `train`, `dev`, `test`: source sentences (the direction's source style); `references`: aligned
  with `test` or None; `target_label`: 0 or 1.
  """
  generator: Generator
  content_scorer: object           # hpprompt.metrics.bertscore.BERTScorer (rescaled)
  classifier: object               # .probs(texts) -> [N, 2]
  train: list[str]
  dev: list[str]
  test: list[str]
  target_label: int
  references: list[str] | None = None
  num_samples: int = 32
  num_bootstraps: int = 4
  sources_per_step: int = 2
  eval_samples: int = 32
  seed: int = 0
  ppl_lm: tuple | None = None      # (causal LM, tokenizer) for test perplexity
  fluency_classifier: object = None
  validation_memo: dict = dataclasses.field(default_factory=dict)
  last_outputs: list[str] | None = None
  timings: dict = dataclasses.field(default_factory=lambda: {"generate": 0.0, "score": 0.0})
  validation_metric = "dev_reward"

  def _sample_scores(self, texts: list[str], sources: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(content [n], target-style probability [n]) of outputs against their sources."""
    content = st_metrics.content_scores(self.content_scorer, texts, sources)
    style = self.classifier.probs(texts)[:, self.target_label]
    return content, style

  def pair_rewards(self, prompts: list[str], sources: list[str], key, num_samples: int,
                   num_bootstraps: int):
    """Every prompt on every source: texts [P][S][n], content, style, rewards [P, S, n], maxima
    [P, S, k] (n = num_samples x num_bootstraps)."""
    n = num_samples * num_bootstraps
    t0 = time.perf_counter()
    texts = self.generator.generate(prompts, sources, n, key)
    t1 = time.perf_counter()
    flat = [x for t in texts for u in t for x in u]
    per_sample_sources = [s for _ in prompts for s in sources for _ in range(n)]
    content, style = self._sample_scores(flat, per_sample_sources)
    shape = (len(prompts), len(sources), n)
    rewards = np.asarray(sample_rewards(jnp.asarray(content), jnp.asarray(style))).reshape(shape)
    maxima = np.asarray(jax.vmap(lambda r: bootstrap_maxima(r, num_bootstraps))(
        jnp.asarray(rewards.reshape(-1, n)))).reshape(shape[:2] + (num_bootstraps,))
    self.timings["generate"] += t1 - t0
    self.timings["score"] += time.perf_counter() - t1
    return texts, content.reshape(shape), style.reshape(shape), rewards, maxima

  def step_sources(self, step: int) -> list[str]:
    b = self.sources_per_step
    return [self.train[(step * b + i) % len(self.train)] for i in range(b)]

  # ---- the agent's task interface (hpprompt.tasks.base.PromptTask) ------------------------------

  def step_rewards(self, prompts: list[str], step: int) -> StepRewards:
    b = self.sources_per_step
    if len(prompts) % b:
      raise ValueError(f"{len(prompts)} prompts per step is not a multiple of {b} sources "
                       "per step.")
    per = len(prompts) // b
    self.timings.update(generate=0.0, score=0.0)
    key = jax.random.fold_in(jax.random.PRNGKey(self.seed), step)
    maxima, content, style, best = [], [], [], []
    for i, source in enumerate(self.step_sources(step)):
      texts, c, s, r, m = self.pair_rewards(prompts[i * per:(i + 1) * per], [source],
                                            jax.random.fold_in(key, i), self.num_samples,
                                            self.num_bootstraps)
      maxima.append(m[:, 0])
      content.append(c)
      style.append(s)
      j, k = np.unravel_index(np.argmax(r[:, 0]), r[:, 0].shape)
      best.append(texts[j][0][k])
    maxima = np.concatenate(maxima)
    groups = source_groups(self.step_sources(step))
    source_ids = np.repeat(groups, per)
    z = np.asarray(source_zscores(jnp.asarray(maxima), jnp.asarray(source_ids),
                                  int(groups.max()) + 1))
    metrics = {"content": float(np.mean(content)), "style": float(100 * np.mean(style)),
               "sample_output": best[0], "time_generate": self.timings["generate"],
               "time_score": self.timings["score"]}
    return StepRewards(raw=maxima.mean(1), metrics=metrics, shaped=z)

  def validate(self, prompts: list[str]) -> np.ndarray:
    """Mean over the dev sources of each prompt's pair reward (no z-score), fixed sampling key."""
    out = []
    for prompt in prompts:
      if prompt not in self.validation_memo:
        maxima = self.pair_rewards([prompt], self.dev, jax.random.PRNGKey(self.seed + 1),
                                   self.num_samples, self.num_bootstraps)[4]
        self.validation_memo[prompt] = float(maxima.mean())
      out.append(self.validation_memo[prompt])
    return np.asarray(out)

  def select_outputs(self, prompt: str, sources: list[str], key) -> list[str]:
    """Test protocol: `eval_samples` outputs per input, keep the best (content + style) / 2."""
    texts = self.generator.generate([prompt], sources, self.eval_samples, key)[0]
    flat = [x for t in texts for x in t]
    content, style = self._sample_scores(flat, [s for s in sources for _ in range(len(texts[0]))])
    rewards = np.asarray(sample_rewards(jnp.asarray(content), jnp.asarray(style)))
    rewards = rewards.reshape(len(sources), -1)
    return [t[int(np.argmax(r))] for t, r in zip(texts, rewards)]

  def evaluate(self, prompt: str, batch: int = 16) -> dict:
    if not self.test:
      return {}
    key = jax.random.PRNGKey(self.seed + 2)
    outputs = []
    for i in range(0, len(self.test), batch):
      outputs += self.select_outputs(prompt, self.test[i:i + batch], jax.random.fold_in(key, i))
    self.last_outputs = outputs
    metrics = st_metrics.evaluate_outputs(
        self.test, outputs, self.target_label, content_scorer=self.content_scorer,
        classifier=self.classifier, references=self.references, ppl_lm=self.ppl_lm,
        fluency_classifier=self.fluency_classifier)
    return {f"test_{k}": v for k, v in metrics.items()}

  def memo_state(self) -> dict:
    return {"validation": [[p, v] for p, v in self.validation_memo.items()]}

  def load_memo_state(self, state: dict | None) -> None:
    if state:
      self.validation_memo = {p: v for p, v in state["validation"]}
