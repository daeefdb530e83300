"""Style transfer reward (methods.md §2.2) against NumPy recomputations; the task on tiny models."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.metrics import bertscore
from hpprompt.metrics import style_transfer as st_metrics
from hpprompt.tasks import generation
from hpprompt.tasks import style_classifier
from hpprompt.tasks import style_transfer


def _numpy_zscores(maxima, sources):
  """RLPrompt's `_compute_reward_zscores`: statistics per source string over its maxima lists."""
  per_source = collections.defaultdict(list)
  for m, s in zip(maxima, sources):
    per_source[s] += list(m)
  return np.asarray([(np.mean(m) - np.mean(per_source[s])) / (np.std(per_source[s]) + 1e-4)
                     for m, s in zip(maxima, sources)])


def test_bootstrap_and_zscores_match_numpy():
  rng = np.random.default_rng(0)
  content, style = rng.uniform(0, 100, (8, 12)), rng.uniform(0, 1, (8, 12))
  rewards = np.asarray(style_transfer.sample_rewards(jnp.asarray(content), jnp.asarray(style)))
  np.testing.assert_allclose(rewards, (content + 100 * style) / 2, rtol=1e-6)
  maxima = np.asarray(jax.vmap(lambda r: style_transfer.bootstrap_maxima(r, 4))(
      jnp.asarray(rewards)))
  expected = np.asarray([[max(r[i * 3:(i + 1) * 3]) for i in range(4)] for r in rewards])
  np.testing.assert_allclose(maxima, expected, rtol=1e-6)
  sources = [0, 0, 0, 0, 1, 1, 2, 2]
  z = style_transfer.source_zscores(jnp.asarray(maxima, jnp.float64 if jax.config.x64_enabled
                                                else jnp.float32), jnp.asarray(sources), 3)
  np.testing.assert_allclose(np.asarray(z), _numpy_zscores(maxima, sources), rtol=1e-4, atol=1e-4)


def test_zscores_pool_equal_source_strings():
  """A source drawn twice in a step is one group (RLPrompt keys its statistics by the string)."""
  rng = np.random.default_rng(1)
  sources = ["slow service", "cold fries", "slow service", "rude", "cold fries", "slow service"]
  groups = style_transfer.source_groups(sources)
  assert list(groups) == [0, 1, 0, 2, 1, 0]
  maxima = rng.uniform(0, 100, (6, 4))
  z = style_transfer.source_zscores(jnp.asarray(maxima, jnp.float32), jnp.asarray(groups), 3)
  want = _numpy_zscores(maxima, sources)
  np.testing.assert_allclose(np.asarray(z), want, rtol=1e-4, atol=1e-4)
  by_position = _numpy_zscores(maxima, range(6))        # kept apart: a different computation
  assert np.abs(want - by_position).max() > 0.1


def test_fit_logistic_equals_sklearn():
  sklearn = pytest.importorskip("sklearn.linear_model")
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 5))
  y = (x @ rng.normal(size=5) + 0.5 * rng.normal(size=200) > 0).astype(np.float64)
  w, b = style_classifier.fit_logistic(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32),
                                       0.7)
  ref = sklearn.LogisticRegression(C=0.7, tol=1e-10, max_iter=10_000).fit(x, y)
  np.testing.assert_allclose(np.asarray(w), ref.coef_[0], rtol=1e-3, atol=1e-4)
  assert float(b) == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_feature_classifier_features_cache_and_heldout(tiny_lm, tmp_path):
  model, tok = tiny_lm
  texts = ["the food was great", "great staff", "bad food", "the worst service ever",
           "a great place", "terrible and bad"] * 4
  labels = [1, 1, 0, 0, 1, 0] * 4
  path = str(tmp_path / "clf.npz")
  clf = style_classifier.train_feature_classifier(model, tok, texts, labels, start_token="<s>",
                                                  cache_path=path, cache_key={"a": 1})
  feats = clf.features(texts[:3])
  for t, f in zip(texts[:3], feats):
    ids = jnp.asarray([[tok.token_to_id("<s>")] + tok.encode(t)])
    np.testing.assert_allclose(f, np.asarray(model(ids).hidden[0].mean(0)), atol=1e-5)
  assert 0 <= clf.info["heldout_accuracy"] <= 1 and clf.info["heldout_size"] == 5
  probs = clf.probs(texts)
  np.testing.assert_allclose(probs.sum(1), 1, atol=1e-9)
  again = style_classifier.train_feature_classifier(model, tok, [], [], start_token="<s>",
                                                    cache_path=path, cache_key={"a": 1})
  np.testing.assert_allclose(again.probs(texts), probs, atol=1e-9)


def test_metrics_formulas():
  content, style, flu = np.array([80., 50., 0.]), np.array([1., 0., 1.]), np.array([1., 1., 0.])
  assert st_metrics.joint_score(content, style, flu) == pytest.approx(80 / 3)
  assert st_metrics.geometric_mean(8, 1, 125) == pytest.approx(10)
  sacrebleu = pytest.importorskip("sacrebleu")
  hyps, refs = ["the food is good .", "nice"], ["the food is great .", "very nice"]
  assert st_metrics.mean_sentence_bleu(hyps, refs) == pytest.approx(
      np.mean([sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(hyps, refs)]))


class _LengthClassifier:
  """P(style 1) grows with the output's length: deterministic, cheap."""

  def probs(self, texts):
    p = np.asarray([min(len(t), 20) / 20 for t in texts])
    return np.stack([1 - p, p], 1)


def _task(tiny_lm, **kw):
  model, tok = tiny_lm
  return style_transfer.StyleTransferTask(
      generation.Generator(model, tok, lower=True),
      bertscore.BERTScorer(model, tok, layer=1), _LengthClassifier(),
      train=["the food was bad", "slow service", "never again", "cold fries"],
      dev=["bad place", "rude staff"], test=["awful food", "not good", "meh"], target_label=1,
      references=["great food", "good", "nice"], num_samples=2, num_bootstraps=2,
      eval_samples=2, **kw)


def test_step_rewards_shapes_zscores_and_determinism(tiny_lm):
  task = _task(tiny_lm)
  prompts = ["", " great", " the food", " good"]
  r = task.step_rewards(prompts, 3)
  assert r.raw.shape == (4,) and r.shaped.shape == (4,)
  # z-scores of pair means within a source sum to zero (the source mean is the mean of its maxima).
  np.testing.assert_allclose(r.shaped.reshape(2, 2).sum(1), 0, atol=1e-3)
  again = task.step_rewards(prompts, 3)
  np.testing.assert_array_equal(again.shaped, r.shaped)
  assert task.step_sources(3) == ["never again", "cold fries"]
  with pytest.raises(ValueError, match="multiple"):
    task.step_rewards(prompts[:3], 0)


def test_step_rewards_pool_a_source_drawn_twice(tiny_lm):
  """Sources of one step that are the same sentence share one z-score group (RLPrompt)."""
  task = _task(tiny_lm)
  task.train = ["slow service", "slow service", "never again"]
  maxima, pair_rewards = [], task.pair_rewards

  def recorded(*args, **kwargs):
    out = pair_rewards(*args, **kwargs)
    maxima.append(np.asarray(out[4][:, 0]))
    return out
  task.pair_rewards = recorded
  r = task.step_rewards(["", " great", " the food", " good"], 0)
  assert task.step_sources(0) == ["slow service", "slow service"]
  want = _numpy_zscores(np.concatenate(maxima), ["slow service"] * 4)
  np.testing.assert_allclose(r.shaped, want, rtol=1e-4, atol=1e-4)


def test_validate_and_evaluate(tiny_lm):
  task = _task(tiny_lm, ppl_lm=tiny_lm)
  v = task.validate([" great", " good"])
  assert v.shape == (2,) and np.isfinite(v).all()
  assert task.validate([" great"])[0] == v[0]
  out = task.evaluate(" great")
  assert len(task.last_outputs) == 3
  for k in ("test_content", "test_style", "test_joint_cs", "test_bleu", "test_bertscore",
            "test_ppl"):
    assert out[k] is not None
  assert out["test_joint"] is None


def test_classifier_pool_takes_each_styles_first_training_sentences():
  from hpprompt.tasks import style_data  # noqa: PLC0415
  texts, labels = style_data.classifier_pool("yelp", 3)
  assert labels == [0, 0, 0, 1, 1, 1]
  assert texts[:3] == style_data.load("yelp", "0to1").train[:3]
  assert texts[3:] == style_data.load("yelp", "1to0").train[:3]


class _CountingScorer:
  """score(cands, refs) -> [3, N] (P, R, F) as BERTScorer's; counts its calls."""

  def __init__(self):
    self.calls = 0

  def score(self, cands, refs):
    self.calls += 1
    x = np.asarray([len(c) - len(r) for c, r in zip(cands, refs)], np.float64)
    return np.stack([x, 2 * x, 3 * x])


def test_content_baseline_is_measured_once_per_key(tmp_path):
  texts = [f"sentence {'x' * i}" for i in range(10)]
  scorer, key = _CountingScorer(), {"lm": "tiny", "layer": 1, "task": "yelp"}
  rng = np.random.default_rng(0)
  a, b = rng.choice(len(texts), 256), rng.choice(len(texts), 256)
  want = scorer.score([texts[i] for i in a], [texts[j] for j in b]).mean(1).tolist()
  scorer.calls = 0
  cache = str(tmp_path / "cache")
  assert style_transfer.content_baseline(scorer, texts, key, cache) == want
  assert style_transfer.content_baseline(scorer, texts, key, cache) == want
  assert scorer.calls == 1                                   # the second came from the cache
  style_transfer.content_baseline(scorer, texts, {**key, "layer": 2}, cache)
  assert scorer.calls == 2                                   # another key: measured again
