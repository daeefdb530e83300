"""A separate test judge for Yelp sentiment: hashed word n-grams + L2 logistic regression.

The style reward of training (`style_classifier.py`: a logistic head on frozen SmolLM2 features,
fitted on the first `REWARD_POOL` = 600 sentences of each style's training pool) also scored test
Style in the README's table. The papers train with one classifier and test with another, so that a
prompt cannot gain test Style by exploiting the judge that rewarded it. This module is that second
judge, built to share nothing with the reward classifier but the task:

* features: no LM. Lower-cased word tokens (`[a-z0-9]+` or one other non-space character), their
  unigrams and adjacent bigrams, each hashed with CRC-32 into `DIM` = 2^18 buckets; a sentence is
  its count vector divided by its L2 norm (`features`);
* model: binary logistic regression with the objective of scikit-learn's `LogisticRegression(C)`,
      C sum_i [log(1 + exp(z_i)) - y_i z_i] + |w|^2 / 2,    z_i = x_i . w + b  (b unpenalised),
  minimised by Newton-CG (SciPy `trust-ncg`, exact gradient and Hessian-vector products:
  `logistic_objective`, `logistic_hessp`, `fit_logistic`);
* data: the bundled Yelp training files from line 601 on (`judge_pool`), deduplicated and minus
  every sentence of the reward pool (either style), of the test inputs, of the dev sentences and of
  the references; 80% fit the judge and 20% are held out for its accuracy (`fit_judge`).

All of it is NumPy / SciPy in float64 and deterministic: the judge is refit in a few seconds
whenever it is needed (no cache; `StyleJudge.save` / `load` write and read an `.npz` of the
weights, ~2 MB, for users who want one).
"""
import dataclasses
import json
import os
import re
import zlib

import chex
import numpy as np
import scipy.optimize
import scipy.sparse

from hpprompt.tasks import style_data

DIM = 2 ** 18                 # hashed feature buckets
REWARD_POOL = 600             # the reward classifier's sentences per style (launch `classifier_pool`)
# Inverse L2 strength, set by hand; held-out accuracy 90.0 / 92.2 / 92.7 / 93.3 / 93.5% with
# C = 1 / 3 / 10 / 30 / 100.
C = 10.0
HELDOUT = 0.2                 # share of the judge pool held out for its accuracy
_TOKEN = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")


def tokenize(text: str) -> list[str]:
  """Lower-cased word tokens: runs of [a-z0-9], or any other single non-space character.

  "It's great!" and "it 's great !" (the Yelp files' spacing) give the same tokens
  ['it', "'", 's', 'great', '!'].
  """
  return _TOKEN.findall(text.lower())


def ngrams(tokens: list[str]) -> list[str]:
  """The feature strings of a token list: 'u <token>' per token, 'b <t_i> <t_i+1>' per pair."""
  return ([f"u {t}" for t in tokens]
          + [f"b {a} {b}" for a, b in zip(tokens[:-1], tokens[1:])])


def hash_index(feature: str, dim: int = DIM) -> int:
  """Bucket of a feature string: CRC-32 of its UTF-8 bytes modulo `dim`."""
  return zlib.crc32(feature.encode("utf-8")) % dim


def features(texts: list[str], dim: int = DIM) -> scipy.sparse.csr_matrix:
  """[N, dim] float64 CSR: hashed n-gram counts of each text over their L2 norm (0 if empty).

  Collisions add up (two n-grams in one bucket count in it together).
  """
  indptr, indices, data = [0], [], []
  for text in texts:
    counts = {}
    for f in ngrams(tokenize(text)):
      j = hash_index(f, dim)
      counts[j] = counts.get(j, 0) + 1
    cols = np.asarray(sorted(counts), np.int64)
    vals = np.asarray([counts[j] for j in cols], np.float64)
    if len(vals):
      vals = vals / np.sqrt((vals ** 2).sum())
    indices.append(cols)
    data.append(vals)
    indptr.append(indptr[-1] + len(cols))
  return scipy.sparse.csr_matrix(
      (np.concatenate([np.zeros(0)] + data), np.concatenate([np.zeros(0, np.int64)] + indices),
       np.asarray(indptr, np.int64)), shape=(len(texts), dim))


def logistic_objective(theta: np.ndarray, x, y: np.ndarray, c: float) -> tuple[float,
                                                                                  np.ndarray]:
  """(value, gradient) of C sum_i [softplus(z_i) - y_i z_i] + |w|^2 / 2, z = x w + b.

  Args:
    theta: [D + 1] float64, the weights w followed by the bias b.
    x: [N, D] features (dense or SciPy sparse).
    y: [N] labels in {0, 1}.
    c: the inverse L2 strength C (> 0).
  Returns:
    The objective (float) and its gradient [D + 1] (the bias is not penalised).
  """
  chex.assert_rank([theta, y], [1, 1])
  chex.assert_equal(theta.shape[0], x.shape[1] + 1)
  chex.assert_equal(y.shape[0], x.shape[0])
  w, b = theta[:-1], theta[-1]
  z = x @ w + b
  value = c * float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * float(w @ w)
  residual = c * (0.5 * (1.0 + np.tanh(0.5 * z)) - y)       # c (sigmoid(z) - y), overflow-free
  grad = np.concatenate([x.T @ residual + w, [residual.sum()]])
  return value, grad


def logistic_hessp(theta: np.ndarray, v: np.ndarray, x, y: np.ndarray, c: float) -> np.ndarray:
  """Hessian of `logistic_objective` at theta times a vector v [D + 1]:
  [x 1]^T diag(C p (1 - p)) [x 1] v + [v_w, 0], p = sigmoid(x w + b) (y does not enter)."""
  chex.assert_equal_shape([theta, v])
  del y
  w, b = theta[:-1], theta[-1]
  p = 0.5 * (1.0 + np.tanh(0.5 * (x @ w + b)))
  su = c * p * (1.0 - p) * (x @ v[:-1] + v[-1])
  return np.concatenate([x.T @ su + v[:-1], [su.sum()]])


def fit_logistic(x, y, c: float = C, *, gtol: float = 1e-7,
                 max_iter: int = 200) -> tuple[np.ndarray, float]:
  """argmin of `logistic_objective` from zero: x [N, D], y [N] in {0, 1} -> (w, b).

  Newton's method with conjugate-gradient steps in a trust region (SciPy `trust-ncg`, exact
  Hessian-vector products), to a gradient norm below `gtol`: ~20 iterations on the judge pool.
  Raises RuntimeError when it stops with a gradient entry above 100 gtol (a stop at a smaller one
  is float64 round-off in the objective near the optimum).
  """
  y = np.asarray(y, np.float64)
  chex.assert_rank(y, 1)
  if not np.isin(y, (0.0, 1.0)).all():
    raise ValueError("labels must be 0 or 1.")
  result = scipy.optimize.minimize(logistic_objective, np.zeros(x.shape[1] + 1), args=(x, y, c),
                                   jac=True, hessp=logistic_hessp, method="trust-ncg",
                                   options={"gtol": gtol, "maxiter": max_iter})
  if not result.success and np.abs(result.jac).max() > 100 * gtol:
    raise RuntimeError(f"trust-ncg did not converge: {result.message}")
  return result.x[:-1], float(result.x[-1])


def probs_from_logits(z: np.ndarray) -> np.ndarray:
  """[N] logits of label 1 -> [N, 2] probabilities (label 0, label 1)."""
  chex.assert_rank(z, 1)
  p1 = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))
  return np.stack([1.0 - p1, p1], axis=1)


@dataclasses.dataclass
class StyleJudge:
  """The fitted judge. `probs(texts)` -> [N, 2] (label 0, label 1), as the style classifiers."""
  weight: np.ndarray
  bias: float
  dim: int = DIM
  info: dict = dataclasses.field(default_factory=dict)

  def probs(self, texts: list[str]) -> np.ndarray:
    return probs_from_logits(features(texts, self.dim) @ self.weight + self.bias)

  def save(self, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, weight=self.weight, bias=self.bias, dim=self.dim,
                        info=json.dumps(self.info))

  @classmethod
  def load(cls, path: str) -> "StyleJudge":
    with np.load(path) as f:
      return cls(f["weight"], float(f["bias"]), int(f["dim"]), json.loads(str(f["info"])))


def reward_pool(root: str = style_data.ROOT, n: int = REWARD_POOL) -> tuple[list[str], list[int]]:
  """The reward classifier's Yelp sentences: the first `n` training lines of each style (the pool
  `hpprompt.launch.style_transfer` trains its classifier on with `classifier_pool=n`)."""
  return style_data.classifier_pool("yelp", n, root=root)


def excluded_sentences(root: str = style_data.ROOT, n: int = REWARD_POOL) -> set[str]:
  """Sentences the judge never trains on: the reward pool, test inputs, dev sentences, references."""
  out = set(reward_pool(root, n)[0])
  for direction in style_data.DIRECTIONS:
    d = style_data.load("yelp", direction, root=root)
    out.update(d.test, d.dev, d.references)
  return out


def judge_pool(root: str = style_data.ROOT, n: int = REWARD_POOL) -> tuple[list[str], list[int]]:
  """Yelp training lines after the reward pool's first `n` of each style, each sentence once,
  without any sentence of `excluded_sentences` (nor one that occurs in both styles)."""
  excluded = excluded_sentences(root, n)
  rest = {label: style_data.load("yelp", direction, root=root).train[n:]
          for direction, label in (("0to1", 0), ("1to0", 1))}
  both = set(rest[0]) & set(rest[1])
  texts, labels = [], []
  for label in (0, 1):
    seen = set()
    for s in rest[label]:
      if s.strip() and s not in excluded and s not in both and s not in seen:
        seen.add(s)
        texts.append(s)
        labels.append(label)
  return texts, labels


def split_heldout(size: int, heldout: float = HELDOUT, seed: int = 0) -> tuple[np.ndarray,
                                                                                np.ndarray]:
  """(fit indices, held-out indices): a seeded permutation of range(size), the last share held out."""
  order = np.random.default_rng(seed).permutation(size)
  cut = int(round(size * (1 - heldout)))
  return np.sort(order[:cut]), np.sort(order[cut:])


def fit_judge(texts: list[str] | None = None, labels: list[int] | None = None, *, c: float = C,
              dim: int = DIM, heldout: float = HELDOUT, seed: int = 0) -> StyleJudge:
  """Fits the judge on the (1 - heldout) share of a pool (default: `judge_pool()`); its accuracy
  on the rest is `info['heldout_accuracy']`."""
  if texts is None:
    texts, labels = judge_pool()
  labels = np.asarray(labels, np.float64)
  fit, held = split_heldout(len(texts), heldout, seed)
  x = features(texts, dim)
  w, b = fit_logistic(x[fit], labels[fit], c)
  judge = StyleJudge(w, b, dim)
  acc = float((judge.probs([texts[i] for i in held]).argmax(1) == labels[held]).mean()) \
      if len(held) else float("nan")
  judge.info = {"heldout_accuracy": acc, "fit_size": int(len(fit)), "heldout_size": int(len(held)),
                "c": c, "dim": dim, "seed": seed,
                "features": "CRC-32 hashed word uni+bigrams, L2-normalised counts"}
  return judge
