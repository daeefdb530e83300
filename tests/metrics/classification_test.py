"""accuracy, matthews_corrcoef and macro_f1 against brute-force references and hand cases."""
import itertools
import math

import numpy as np
import pytest

from hpprompt import metrics
from hpprompt.metrics import classification


# ---- references: plain Python loops, each formula written out its own way -----------------------

def ref_accuracy(preds, labels):
  return sum(int(p == y) for p, y in zip(preds, labels)) / len(labels)


def ref_mcc_binary(preds, labels, positive=1):
  tp = sum(p == positive and y == positive for p, y in zip(preds, labels))
  tn = sum(p != positive and y != positive for p, y in zip(preds, labels))
  fp = sum(p == positive and y != positive for p, y in zip(preds, labels))
  fn = sum(p != positive and y == positive for p, y in zip(preds, labels))
  den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
  return 0.0 if den == 0 else (tp * tn - fp * fn) / math.sqrt(den)


def ref_mcc_gorodkin(preds, labels):
  """Gorodkin (2004) eq. 8: triple sums over the confusion matrix (rows: label, cols: pred)."""
  classes = sorted(set(preds) | set(labels))
  k = len(classes)
  c = [[0] * k for _ in range(k)]
  for p, y in zip(preds, labels):
    c[classes.index(y)][classes.index(p)] += 1
  num = sum(c[a][a] * c[b][m] - c[a][b] * c[m][a]
            for a, b, m in itertools.product(range(k), repeat=3))
  def den(cm):
    return sum(sum(cm[a][l] for l in range(k)) *
               sum(cm[a2][l2] for a2 in range(k) if a2 != a for l2 in range(k))
               for a in range(k))
  transposed = [list(row) for row in zip(*c)]
  d1, d2 = den(c), den(transposed)
  return 0.0 if d1 * d2 == 0 else num / math.sqrt(d1 * d2)


def ref_mcc_onehot(preds, labels):
  """R_K as a correlation of one-hot matrices X (labels) and Y (preds), centred per column."""
  classes = sorted(set(preds) | set(labels))
  x = np.array([[float(y == c) for c in classes] for y in labels])
  y = np.array([[float(p == c) for c in classes] for p in preds])
  x -= x.mean(axis=0)
  y -= y.mean(axis=0)
  den = math.sqrt((x * x).sum() * (y * y).sum())
  return 0.0 if den == 0 else float((x * y).sum() / den)


def ref_macro_f1(preds, labels):
  scores = []
  for c in sorted(set(preds) | set(labels)):
    tp = sum(p == c and y == c for p, y in zip(preds, labels))
    n_pred = sum(p == c for p in preds)
    n_true = sum(y == c for y in labels)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    scores.append(0.0 if precision + recall == 0 else
                  2 * precision * recall / (precision + recall))
  return sum(scores) / len(scores)


def _random_cases():
  rng = np.random.default_rng(0)
  for i in range(60):
    k = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    labels = rng.integers(0, k, size=n)
    noise = rng.random(n) < rng.uniform(0, 1)         # from near-perfect to near-random
    preds = np.where(noise, rng.integers(0, k, size=n), labels)
    if i % 10 == 0:
      preds = np.full(n, rng.integers(0, k))          # constant predictions
    yield preds, labels


# ---- tests ---------------------------------------------------------------------------------------

def test_exported():
  assert metrics.accuracy is classification.accuracy
  assert metrics.matthews_corrcoef is classification.matthews_corrcoef
  assert metrics.macro_f1 is classification.macro_f1
  assert {"accuracy", "matthews_corrcoef", "macro_f1"} <= set(metrics.__all__)


def test_against_references():
  for preds, labels in _random_cases():
    p, y = preds.tolist(), labels.tolist()
    assert classification.accuracy(preds, labels) == pytest.approx(ref_accuracy(p, y), abs=1e-12)
    mcc = classification.matthews_corrcoef(preds, labels)
    assert mcc == pytest.approx(ref_mcc_gorodkin(p, y), abs=1e-12)
    assert mcc == pytest.approx(ref_mcc_onehot(p, y), abs=1e-12)
    assert -1 <= mcc <= 1
    assert classification.matthews_corrcoef(labels, preds) == pytest.approx(mcc, abs=1e-12)
    assert classification.macro_f1(preds, labels) == pytest.approx(ref_macro_f1(p, y), abs=1e-12)


def test_binary_mcc_formula():
  rng = np.random.default_rng(1)
  for _ in range(40):
    labels = rng.integers(0, 2, size=int(rng.integers(2, 50)))
    preds = np.where(rng.random(labels.size) < 0.3, 1 - labels, labels)
    assert classification.matthews_corrcoef(preds, labels) == pytest.approx(
        ref_mcc_binary(preds.tolist(), labels.tolist()), abs=1e-12)


def test_hand_cases():
  y = [0, 1, 1, 0, 1, 0]
  inverse = [1 - v for v in y]
  assert classification.accuracy(y, y) == 1.0
  assert classification.accuracy(inverse, y) == 0.0
  assert classification.accuracy([0, 1, 0, 0], [0, 1, 1, 0]) == 0.75
  assert classification.matthews_corrcoef(y, y) == pytest.approx(1.0)
  assert classification.matthews_corrcoef(inverse, y) == pytest.approx(-1.0)
  assert classification.matthews_corrcoef([1] * 6, y) == 0.0            # constant prediction
  assert classification.matthews_corrcoef([0, 0, 1], [1, 1, 1]) == 0.0  # one label class
  assert classification.matthews_corrcoef([2, 2], [2, 2]) == 0.0       # one class in all
  # sklearn's docstring example: y_true [+1, +1, +1, -1], y_pred [+1, -1, +1, +1] -> -1/3.
  assert classification.matthews_corrcoef([1, -1, 1, 1], [1, 1, 1, -1]) == pytest.approx(-1 / 3)
  # 3 classes: perfect is 1; all wrong by a cyclic shift is -1/(K-1) = -0.5, not -1.
  assert classification.matthews_corrcoef([0, 1, 2, 0, 1, 2], [0, 1, 2, 0, 1, 2]) == 1.0
  assert classification.matthews_corrcoef([1, 2, 0, 1, 2, 0], [0, 1, 2, 0, 1, 2]) == (
      pytest.approx(-0.5))
  assert classification.macro_f1(y, y) == 1.0
  assert classification.macro_f1(inverse, y) == 0.0
  # class 0: P 1/2 R 1; class 1: P 1/2 R 1/2; class 2: P 1 R 1/2 -> (2/3 + 1/2 + 2/3) / 3.
  assert classification.macro_f1([0, 0, 1, 1, 2], [0, 1, 1, 2, 2]) == pytest.approx(11 / 18)
  # A class only ever predicted counts with F1 0 (the union of classes, as sklearn).
  assert classification.macro_f1([0, 1, 2, 2], [0, 1, 0, 1]) == pytest.approx((2 / 3 + 2 / 3) / 3)


def test_input_types():
  y = np.array([0, 1, 1, 0, 2])
  p = np.array([0, 1, 0, 0, 2])
  mcc = classification.matthews_corrcoef(p, y)
  for cast in (list, tuple, lambda a: a.astype(np.int8), lambda a: a.astype(np.uint64)):
    assert classification.matthews_corrcoef(cast(p), cast(y)) == pytest.approx(mcc)
  names = np.array(["neg", "pos", "mid"])
  assert classification.matthews_corrcoef(names[p], names[y]) == pytest.approx(mcc)
  assert classification.macro_f1(names[p], names[y]) == pytest.approx(
      classification.macro_f1(p, y))
  for fn in (classification.accuracy, classification.matthews_corrcoef,
             classification.macro_f1):
    assert isinstance(fn(p, y), float)


def test_large_counts_no_overflow():
  # n^2 = 4e12 products: must not overflow or lose the exact answer.
  n = 2_000_000
  labels = np.arange(n) % 2
  preds = labels.copy()
  preds[:n // 4] = 1 - preds[:n // 4]                  # 25% wrong, symmetric
  assert classification.accuracy(preds, labels) == 0.75
  assert classification.matthews_corrcoef(preds, labels) == pytest.approx(0.5, abs=1e-12)
  assert classification.macro_f1(preds, labels) == pytest.approx(0.75, abs=1e-12)


@pytest.mark.parametrize("fn", ["accuracy", "matthews_corrcoef", "macro_f1"])
def test_bad_shapes(fn):
  fn = getattr(classification, fn)
  with pytest.raises(ValueError, match="equal length"):
    fn([0, 1], [0, 1, 1])
  with pytest.raises(ValueError, match="equal length"):
    fn([[0, 1]], [[0, 1]])
  with pytest.raises(ValueError, match="no predictions"):
    fn([], [])


def test_matches_sklearn():
  from sklearn import metrics as sklearn_metrics
  for preds, labels in _random_cases():
    assert classification.matthews_corrcoef(preds, labels) == pytest.approx(
        sklearn_metrics.matthews_corrcoef(labels, preds), abs=1e-12)
    assert classification.macro_f1(preds, labels) == pytest.approx(
        sklearn_metrics.f1_score(labels, preds, average="macro", zero_division=0), abs=1e-12)
    assert classification.accuracy(preds, labels) == pytest.approx(
        sklearn_metrics.accuracy_score(labels, preds))
