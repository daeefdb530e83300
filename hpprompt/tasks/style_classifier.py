"""Style classifiers for text style transfer: P(style | text) for the reward and style accuracy.

The papers use a BERT-base-uncased classifier fine-tuned on Yelp (Google-Drive download, not
reachable offline). Offline we train one: a frozen real LM's mean-pooled final hidden states
(SmolLM2-135M by default) and a logistic-regression head fitted by Newton's method to the
L2-penalised
log-likelihood (the objective of scikit-learn's `LogisticRegression(C)`: C * sum of log losses +
|w|^2 / 2, bias unpenalised), on the training pool only, with its held-out accuracy recorded. Any
Hugging Face sequence-classification checkpoint (BERT / RoBERTa) plugs in instead by name or path
(`HFStyleClassifier`), where the hub or a local copy is available.
"""
import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.metrics import bertscore
from hpprompt.models.bert import BertClassifier
from hpprompt.models.tokenizer import Tokenizer


def _bucket(n: int, step: int) -> int:
  return max(step, -(-n // step) * step)


@functools.partial(jax.jit, static_argnames=("steps",))
def fit_logistic(x: jax.Array, y: jax.Array, c: float,
                 steps: int = 25) -> tuple[jax.Array, jax.Array]:
  """Binary logistic regression: argmin C sum_i logloss(y_i, x_i w + b) + |w|^2 / 2 by Newton steps.

  x [N, D] (standardise it first), y [N] in {0, 1} -> (w [D], b).
  """
  n, d = x.shape
  xb = jnp.concatenate([x, jnp.ones((n, 1), x.dtype)], axis=1)
  reg = jnp.concatenate([jnp.ones((d,)), jnp.zeros((1,))]).astype(x.dtype)

  def step(theta, _):
    p = jax.nn.sigmoid(xb @ theta)
    grad = c * xb.T @ (p - y) + reg * theta
    hess = c * (xb.T * (p * (1 - p))) @ xb + jnp.diag(reg) + 1e-8 * jnp.eye(d + 1)
    return theta - jnp.linalg.solve(hess, grad), None

  theta, _ = jax.lax.scan(step, jnp.zeros((d + 1,), x.dtype), None, length=steps)
  return theta[:d], theta[d]


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _features_jit(graphdef, state, ids, mask):
  """Mean of the final hidden states over real tokens [B, D]."""
  hidden = nnx.merge(graphdef, state)(ids, attention_mask=mask, compute_logits=False).hidden
  m = mask[..., None].astype(jnp.float32)
  return (hidden.astype(jnp.float32) * m).sum(1) / jnp.maximum(m.sum(1), 1)


@dataclasses.dataclass
class FeatureStyleClassifier:
  """Frozen LM features + logistic head. `probs(texts)` -> [N, 2] (label 0, label 1)."""
  model: nnx.Module
  tokenizer: Tokenizer
  start_token: str | None = None
  mean: np.ndarray | None = None
  scale: np.ndarray | None = None
  weight: np.ndarray | None = None
  bias: float = 0.0
  batch_size: int = 64
  info: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.graphdef, self.state = nnx.split(self.model)
    self.start_ids = [] if self.start_token is None else [
        self.tokenizer.token_to_id(self.start_token)]

  def features(self, texts: list[str]) -> np.ndarray:
    """Mean-pooled final hidden states [N, D] (length-sorted batches)."""
    seqs = [(self.start_ids + self.tokenizer.encode(t))[:256] for t in texts]
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.zeros((len(texts), self.model.output_embedding().shape[1]), np.float32)
    for i in range(0, len(order), self.batch_size):
      rows = order[i:i + self.batch_size]
      width = _bucket(max(max(len(seqs[r]) for r in rows), 1), 32)
      ids = np.zeros((bertscore._pow4(len(rows)), width), np.int32)
      mask = np.zeros(ids.shape, bool)
      mask[:, 0] = True
      for j, r in enumerate(rows):
        ids[j, :len(seqs[r])], mask[j, :len(seqs[r])] = seqs[r], True
      out[rows] = np.asarray(_features_jit(self.graphdef, self.state, jnp.asarray(ids),
                                           jnp.asarray(mask)))[:len(rows)]
    return out

  def fit(self, texts: list[str], labels, *, c: float = 1.0) -> "FeatureStyleClassifier":
    feats = self.features(texts)
    self.mean, self.scale = feats.mean(0), feats.std(0) + 1e-6
    w, b = fit_logistic(jnp.asarray((feats - self.mean) / self.scale, jnp.float32),
                        jnp.asarray(labels, jnp.float32), c)
    self.weight, self.bias = np.asarray(w), float(b)
    return self

  def probs_from_features(self, feats: np.ndarray) -> np.ndarray:
    z = ((feats - self.mean) / self.scale) @ self.weight + self.bias
    p1 = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    return np.stack([1 - p1, p1], axis=1)

  def probs(self, texts: list[str]) -> np.ndarray:
    return self.probs_from_features(self.features(texts))

  def save(self, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, mean=self.mean, scale=self.scale, weight=self.weight, bias=self.bias,
             info=json.dumps(self.info))

  def load(self, path: str) -> "FeatureStyleClassifier":
    with np.load(path) as f:
      self.mean, self.scale, self.weight = f["mean"], f["scale"], f["weight"]
      self.bias, self.info = float(f["bias"]), json.loads(str(f["info"]))
    return self


def train_feature_classifier(model, tokenizer, texts: list[str], labels: list[int], *,
                             start_token: str | None, heldout: float = 0.2, c: float = 1.0,
                             seed: int = 0, cache_path: str | None = None,
                             cache_key: dict | None = None) -> FeatureStyleClassifier:
  """Fits on a random (1 - heldout) share of the pool; `info['heldout_accuracy']` on the rest.

  With `cache_path`, a saved head whose `info['key']` equals `cache_key` is loaded instead.
  """
  clf = FeatureStyleClassifier(model, tokenizer, start_token=start_token)
  key = json.loads(json.dumps(cache_key or {}))
  if cache_path and os.path.exists(cache_path):
    clf.load(cache_path)
    if clf.info.get("key") == key:
      return clf
  labels = np.asarray(labels)
  order = np.random.default_rng(seed).permutation(len(texts))
  cut = int(round(len(texts) * (1 - heldout)))
  train, test = order[:cut], order[cut:]
  feats = clf.features(texts)
  clf.mean, clf.scale = feats[train].mean(0), feats[train].std(0) + 1e-6
  w, b = fit_logistic(jnp.asarray((feats[train] - clf.mean) / clf.scale, jnp.float32),
                      jnp.asarray(labels[train], jnp.float32), c)
  clf.weight, clf.bias = np.asarray(w), float(b)
  acc = float((clf.probs_from_features(feats[test]).argmax(1) == labels[test]).mean())
  clf.info = {"key": key, "heldout_accuracy": acc, "train_size": int(len(train)),
              "heldout_size": int(len(test)), "c": c}
  if cache_path:
    clf.save(cache_path)
  return clf


@dataclasses.dataclass
class HFStyleClassifier:
  """A BERT/RoBERTa sequence classifier (`hub.load_pretrained` name or path); label i = style i."""
  model: nnx.Module
  tokenizer: Tokenizer
  batch_size: int = 64
  info: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.model, BertClassifier) or self.model.config.num_labels < 2:
      kind = (f"a {self.model.config.num_labels}-label classifier"
              if isinstance(self.model, BertClassifier) else f"a {type(self.model).__name__}")
      raise ValueError(f"{kind}, not a sequence classifier with a label per style; give a "
                       "BERT / RoBERTa ...ForSequenceClassification checkpoint (2 labels).")
    self.graphdef, self.state = nnx.split(self.model)
    self.cls = self.tokenizer.special_id("cls") or self.tokenizer.special_id("bos")
    self.sep = self.tokenizer.special_id("sep") or self.tokenizer.special_id("eos")

  @functools.cached_property
  def _fn(self):
    graphdef = self.graphdef
    return jax.jit(lambda s, ids, mask: jax.nn.softmax(
        nnx.merge(graphdef, s)(ids, attention_mask=mask).astype(jnp.float32), -1))

  def probs(self, texts: list[str]) -> np.ndarray:
    seqs = [[i for i in (self.cls,) if i is not None] + self.tokenizer.encode(t)[:254]
            + [i for i in (self.sep,) if i is not None] for t in texts]
    out = []
    for i in range(0, len(seqs), self.batch_size):
      chunk = seqs[i:i + self.batch_size]
      ids = np.zeros((len(chunk), _bucket(max(map(len, chunk)), 16)), np.int32)
      mask = np.zeros(ids.shape, bool)
      for j, s in enumerate(chunk):
        ids[j, :len(s)], mask[j, :len(s)] = s, True
      out.append(np.asarray(self._fn(self.state, jnp.asarray(ids), jnp.asarray(mask))))
    return np.concatenate(out)[:, :2].astype(np.float64)
