"""Classification scores in NumPy: accuracy, Matthews correlation (Gorodkin's R_K), macro F1.

All take `(preds, labels)`: 1-D arrays of the same length holding class ids (any values that
`np.unique` can sort). The classes are those seen in either array, as in scikit-learn.
"""
import numpy as np


def _check(preds, labels) -> tuple[np.ndarray, np.ndarray]:
  preds, labels = np.asarray(preds), np.asarray(labels)
  if preds.ndim != 1 or preds.shape != labels.shape:
    raise ValueError(f"preds and labels must be 1-D of equal length, got shapes {preds.shape} and "
                     f"{labels.shape}.")
  if preds.size == 0:
    raise ValueError("no predictions to score.")
  return preds, labels


def confusion_matrix(preds, labels) -> np.ndarray:
  """C[i, j] = number of examples with label class i predicted as class j (classes sorted)."""
  preds, labels = _check(preds, labels)
  _, idx = np.unique(np.concatenate([labels, preds]), return_inverse=True)
  k = int(idx.max()) + 1
  n = labels.size
  return np.bincount(idx[:n] * k + idx[n:], minlength=k * k).reshape(k, k)


def accuracy(preds, labels) -> float:
  """Fraction of predictions equal to the label."""
  preds, labels = _check(preds, labels)
  return float(np.mean(preds == labels))


def matthews_corrcoef(preds, labels) -> float:
  """Matthews correlation coefficient; multiclass is Gorodkin's R_K (the formula sklearn uses).

  R_K = (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)), with C the confusion matrix, t its row sums
  (label counts), p its column sums (prediction counts), c its trace and s the number of examples.
  Binary data gives (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)). Returns 0 when the
  denominator is 0 (a constant prediction or a single label class).
  """
  c = confusion_matrix(preds, labels).astype(np.float64)   # float: s^2 overflows no int64 here
  t, p = c.sum(axis=1), c.sum(axis=0)
  s = c.sum()
  cov_tp = np.trace(c) * s - t @ p
  cov_pp = s * s - p @ p
  cov_tt = s * s - t @ t
  if cov_pp == 0 or cov_tt == 0:
    return 0.0
  return float(cov_tp / np.sqrt(cov_pp * cov_tt))


def macro_f1(preds, labels) -> float:
  """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN) (0 for a class never right)."""
  c = confusion_matrix(preds, labels)
  tp = np.diag(c).astype(np.float64)
  fp = c.sum(axis=0) - tp
  fn = c.sum(axis=1) - tp
  return float(np.mean(2 * tp / (2 * tp + fp + fn)))   # every class was seen: denominator > 0
