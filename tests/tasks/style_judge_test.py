"""The separate style judge (issue 21): hashing against a brute-force reference, the fit against
scikit-learn and a dense Newton reference, the pools' disjointness, held-out accuracy; the
rescoring's bootstrap against a loop."""
import zlib

import numpy as np
import pytest
import scipy.sparse

from hpprompt.launch import style_judge as rescoring
from hpprompt.launch import style_transfer
from hpprompt.tasks import style_data
from hpprompt.tasks import style_judge


def _brute_force_features(texts, dim):
  """Reference rows {bucket: value}: split by hand, hash every uni/bigram string with zlib, count,
  normalise."""
  rows = []
  for text in texts:
    tokens, word = [], ""
    for ch in text.lower():
      if ch.isascii() and (ch.isdigit() or "a" <= ch <= "z"):
        word += ch
        continue
      if word:
        tokens.append(word)
        word = ""
      if not ch.isspace():
        tokens.append(ch)
    if word:
      tokens.append(word)
    grams = ["u " + t for t in tokens] + ["b " + tokens[k] + " " + tokens[k + 1]
                                         for k in range(len(tokens) - 1)]
    row = {}
    for g in grams:
      j = zlib.crc32(g.encode("utf-8")) % dim
      row[j] = row.get(j, 0.0) + 1.0
    norm = np.sqrt(sum(v * v for v in row.values()))
    rows.append({j: v / norm for j, v in row.items()})
  return rows


def test_tokenize_and_ngrams():
  assert style_judge.tokenize("It's GREAT!") == ["it", "'", "s", "great", "!"]
  assert style_judge.tokenize("it 's great !") == style_judge.tokenize("It's great!")
  assert style_judge.ngrams(["a", "b", "c"]) == ["u a", "u b", "u c", "b a b", "b b c"]
  assert style_judge.hash_index("u a", 2 ** 18) == zlib.crc32(b"u a") % 2 ** 18


@pytest.mark.parametrize("dim", [16, 2 ** 18])
def test_features_equal_brute_force(dim):
  texts = ["the food was great!", "It's the WORST service... ever", "", "   ", "café 5 stars",
           "great great great", "no. no. no."] + style_judge.judge_pool()[0][:40]
  x = style_judge.features(texts, dim)
  assert scipy.sparse.issparse(x) and x.shape == (len(texts), dim) and x.dtype == np.float64
  for i, want in enumerate(_brute_force_features(texts, dim)):
    got = x.getrow(i)
    assert sorted(got.indices) == sorted(want), texts[i]
    np.testing.assert_allclose(got.toarray()[0, sorted(want)], [want[j] for j in sorted(want)],
                               atol=1e-12)
  assert dim > 16 or x.getnnz(axis=1).max() <= 16   # collisions merge buckets at dim 16


def _problem(seed=0, n=120, d=30):
  rng = np.random.default_rng(seed)
  x = scipy.sparse.random(n, d, density=0.3, random_state=seed, format="csr") * 3
  y = ((x @ rng.normal(size=d)) + 0.3 * rng.normal(size=n) > 0.4).astype(np.float64)
  return x, y


def test_objective_gradient_and_hessian_by_finite_differences():
  x, y = _problem(1, 40, 6)
  theta = np.random.default_rng(2).normal(size=7)
  f, g = style_judge.logistic_objective(theta, x, y, 0.8)
  eps = 1e-6
  num = [(style_judge.logistic_objective(theta + eps * e, x, y, 0.8)[0]
          - style_judge.logistic_objective(theta - eps * e, x, y, 0.8)[0]) / (2 * eps)
         for e in np.eye(7)]
  np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)
  v = np.random.default_rng(3).normal(size=7)
  hv = style_judge.logistic_hessp(theta, v, x, y, 0.8)
  num_hv = (style_judge.logistic_objective(theta + eps * v, x, y, 0.8)[1]
            - style_judge.logistic_objective(theta - eps * v, x, y, 0.8)[1]) / (2 * eps)
  np.testing.assert_allclose(hv, num_hv, rtol=1e-5, atol=1e-6)
  z = x @ theta[:-1] + theta[-1]
  assert f == pytest.approx(0.8 * np.sum(np.log1p(np.exp(z)) - y * z)
                            + 0.5 * theta[:-1] @ theta[:-1])


def _dense_newton(x, y, c, steps=50):
  """Independent reference: plain Newton on the dense problem (bias unpenalised)."""
  xb = np.hstack([x, np.ones((len(x), 1))])
  reg = np.r_[np.ones(x.shape[1]), 0.0]
  theta = np.zeros(xb.shape[1])
  for _ in range(steps):
    p = 1 / (1 + np.exp(-(xb @ theta)))
    grad = c * xb.T @ (p - y) + reg * theta
    hess = c * (xb.T * (p * (1 - p))) @ xb + np.diag(reg)
    theta = theta - np.linalg.solve(hess, grad)
  return theta[:-1], theta[-1]


@pytest.mark.parametrize("c", [0.3, 10.0])
def test_fit_equals_dense_newton_and_sklearn(c):
  x, y = _problem()
  w, b = style_judge.fit_logistic(x, y, c)
  w_ref, b_ref = _dense_newton(x.toarray(), y, c)
  np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-6)
  assert b == pytest.approx(b_ref, abs=1e-6)
  linear_model = pytest.importorskip("sklearn.linear_model")
  ref = linear_model.LogisticRegression(C=c, tol=1e-12, max_iter=100_000).fit(x, y)
  np.testing.assert_allclose(w, ref.coef_[0], rtol=1e-4, atol=1e-5)
  assert b == pytest.approx(ref.intercept_[0], abs=1e-5)
  probs = style_judge.probs_from_logits(x @ w + b)
  np.testing.assert_allclose(probs, ref.predict_proba(x), atol=1e-5)


def test_fit_rejects_bad_labels():
  x, y = _problem(n=10)
  with pytest.raises(ValueError, match="0 or 1"):
    style_judge.fit_logistic(x, 2 * y)


def test_pools_are_disjoint():
  judge_texts, judge_labels = style_judge.judge_pool()
  cfg = style_transfer.EvaluateConfig()         # the launcher's reward pool is the one excluded
  assert (cfg.task, cfg.classifier_pool, cfg.dataset_seed) == ("yelp", style_judge.REWARD_POOL, 0)
  reward_texts, reward_labels = style_judge.reward_pool()
  assert len(reward_texts) == 2 * style_judge.REWARD_POOL and sum(reward_labels) == style_judge.REWARD_POOL
  assert len(judge_texts) > 6000 and len(set(judge_texts)) == len(judge_texts)
  assert 0.45 < np.mean(judge_labels) < 0.55
  judge = set(judge_texts)
  assert not judge & set(reward_texts)
  for direction in style_data.DIRECTIONS:
    d = style_data.load("yelp", direction)
    assert not judge & set(d.test) and not judge & set(d.dev) and not judge & set(d.references)
    assert not set(reward_texts) & set(d.test)
  fit, held = style_judge.split_heldout(len(judge_texts))
  assert not set(fit) & set(held) and len(fit) + len(held) == len(judge_texts)


def test_reduced_fit_is_accurate_and_round_trips(tmp_path):
  texts, labels = style_judge.judge_pool()
  rng = np.random.default_rng(0)
  keep = np.sort(rng.choice(len(texts), 1500, replace=False))
  judge = style_judge.fit_judge([texts[i] for i in keep], [labels[i] for i in keep],
                                dim=2 ** 16)
  assert judge.info["heldout_size"] == 300
  assert judge.info["heldout_accuracy"] > 0.8, judge.info
  path = str(tmp_path / "judge.npz")
  judge.save(path)
  loaded = style_judge.StyleJudge.load(path)
  probe = ["the food was amazing and the staff friendly", "rude staff , cold food , never again"]
  np.testing.assert_allclose(loaded.probs(probe), judge.probs(probe), atol=0)
  assert loaded.info == judge.info
  assert list(judge.probs(probe).argmax(1)) == [1, 0]


def test_paired_bootstrap_against_a_loop():
  rng = np.random.default_rng(4)
  ca, cb = rng.uniform(0, 60, 50), rng.uniform(0, 60, 50)
  sa, sb = (rng.uniform(size=50) < 0.6) * 1.0, (rng.uniform(size=50) < 0.4) * 1.0
  out = rescoring.paired_bootstrap(ca, sa, cb, sb, num=300, seed=7)
  idx = np.random.default_rng(7).integers(0, 50, (300, 50))
  diffs = [np.mean(ca[i] * sa[i]) - np.mean(cb[i] * sb[i]) for i in idx]
  gms = [np.sqrt(ca[i].mean() * 100 * sa[i].mean()) - np.sqrt(cb[i].mean() * 100 * sb[i].mean())
         for i in idx]
  assert out["joint_cs"]["diff"] == pytest.approx(np.mean(ca * sa) - np.mean(cb * sb))
  assert out["joint_cs"]["se"] == pytest.approx(np.std(diffs, ddof=1))
  assert out["gm_cs"]["se"] == pytest.approx(np.std(gms, ddof=1))
  assert out["style"]["diff"] == pytest.approx(100 * (sa.mean() - sb.mean()))
  assert rescoring.agreement(np.eye(2)[[0, 1, 1]], np.eye(2)[[0, 0, 1]]) == pytest.approx(2 / 3)


def test_evaluate_judge_option_rejects_shakespeare(tmp_path):
  cfg = style_transfer.EvaluateConfig(task="shakespeare", judge=True, outputs="x.txt",
                                      cache_dir=str(tmp_path))
  with pytest.raises(style_transfer.cli.FlagError) as e:
    style_transfer.evaluate(cfg)
  assert e.value.flag == "judge"


@pytest.mark.slow
def test_evaluate_judge_option(tiny_gpt2_dir, tmp_path):
  test = style_data.load("yelp", "0to1").test
  outputs = ["the food was amazing and the staff so friendly !", test[1], "great place , love it",
             "worst meal ever , rude staff"]
  (tmp_path / "out.txt").write_text("".join(o + "\n" for o in outputs))
  res = style_transfer.evaluate(style_transfer.EvaluateConfig(
      task_lm=tiny_gpt2_dir, content_layer=1, classifier_pool=20, outputs=str(tmp_path / "out.txt"),
      test_limit=4, cache_dir=str(tmp_path / "cache"), judge=True))
  want = style_judge.fit_judge().probs(outputs).argmax(1) == 1
  assert res["style_judge"] == round(100 * want.mean(), 1) and res["num_outputs"] == 4


def test_markdown_of_a_record():
  row = {"direction": "0to1", "row": "pin", "found_by": "PIN", "prompt": " human", "content": 20.0,
         "style_reward": 37.2, "style_judge": 19.4, "agreement": 71.8, "joint_cs_judge": 3.8,
         "gm_cs_judge": 20.0,
         "vs_null_reward": {k: {"diff": 1.0, "se": 0.5} for k in ("style", "joint_cs", "gm_cs")},
         "vs_null_judge": {k: {"diff": -2.0, "se": 0.25} for k in ("style", "joint_cs", "gm_cs")}}
  record = {"judge": {"features": "f", "c": 10.0, "fit_size": 5, "heldout_size": 2,
                      "heldout_accuracy": 0.5},
            "reward_classifier": {"style_classifier_heldout_accuracy": 0.879}, "bootstrap": 9,
            "rows": [row, {**row, "row": "rlprompt_released", "prompt": None,
                           "vs_null_reward": None, "vs_null_judge": None}],
            "calibration": [{"direction": "1to0", "sentences": "test inputs", "label": 1,
                             "reward_accuracy": 90.0, "judge_accuracy": 88.8}]}
  text = rescoring.markdown(record)
  assert '| neg -> pos | `" human"` | PIN | 20.0 | 37.2 | 19.4 | 71.8 | 3.8 | 20.0 | +1.0 ± 0.5 ' \
         '| -2.0 ± 0.2 | -2.0 ± 0.2 | -2.0 ± 0.2 |' in text
  assert "| — | — | — | — |" in text and "| pos -> neg | test inputs | 1 | 90.0 | 88.8 |" in text


def test_rescore_bad_flags_before_loading(tmp_path):
  with pytest.raises(style_transfer.cli.FlagError) as e:
    rescoring.rescore(rescoring.RescoreConfig(bootstrap=1))
  assert e.value.flag == "bootstrap"
  with pytest.raises(style_transfer.cli.FlagError) as e:
    rescoring.rescore(rescoring.RescoreConfig(docs_dir=str(tmp_path)))
  assert e.value.flag == "docs_dir"
  with pytest.raises(style_transfer.cli.FlagError) as e:
    rescoring.rescore(rescoring.RescoreConfig(rows=("pin", "null")))
  assert e.value.flag == "rows" and "first row must be null" in str(e.value)
  with pytest.raises(style_transfer.cli.FlagError) as e:
    rescoring.rescore(rescoring.RescoreConfig(docs_dir=str(tmp_path), rows=("null", "hand")))
  assert e.value.flag == "docs_dir" and "null.0to1.json" in str(e.value)
