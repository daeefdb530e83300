"""BERTScore in JAX equals the `bert-score` package on the same tiny random RoBERTa."""
import json
import os
import shutil

import numpy as np
import pytest

from hpprompt.metrics import bertscore
from hpprompt.models import hub

# No empty sentence: the package fails on one under transformers 5 (build_inputs_with_special_tokens).
CANDS = ["the food was great and the staff friendly .", "a terrible movie",
         "it was okay , not bad", "great great great"]
REFS = ["the food was bad and the staff rude .", "a great movie indeed", "it was not okay", "bad"]


@pytest.fixture(scope="module")
def package_dir(tiny_roberta_dir, tmp_path_factory):
  """The tiny RoBERTa with a finite model_max_length (the package truncates to it)."""
  path = tmp_path_factory.mktemp("bertscore_roberta")
  for f in os.listdir(tiny_roberta_dir):
    shutil.copy(os.path.join(tiny_roberta_dir, f), path / f)
  (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 256}))
  return str(path)


def _package(tiny_roberta_dir, layer, **kw):
  bert_score = pytest.importorskip("bert_score")
  out = [bert_score.score([c], [r], model_type=tiny_roberta_dir, num_layers=layer, batch_size=1,
                          **kw) for c, r in zip(CANDS, REFS)]
  return np.asarray([[float(t[k][0]) for t in out] for k in range(3)])


@pytest.mark.parametrize("layer", [1, 2])
def test_equals_bert_score_package(package_dir, layer):
  model, tok = hub.load_pretrained(package_dir)
  ours = bertscore.BERTScorer(model, tok, layer=layer, prefix_space=False).score(CANDS, REFS)
  np.testing.assert_allclose(ours, _package(package_dir, layer), atol=1e-5)


class _SerialPool:
  """The package computes IDF in a forked Pool; forking a JAX process can deadlock."""

  def __init__(self, *args):
    del args

  def __enter__(self):
    return self

  def __exit__(self, *args):
    return False

  def map(self, fn, items):
    return list(map(fn, items))


def test_idf_and_baseline_equal_bert_score_package(package_dir, tmp_path, monkeypatch):
  bert_score = pytest.importorskip("bert_score")
  monkeypatch.setattr(bert_score.utils, "Pool", _SerialPool)
  model, tok = hub.load_pretrained(package_dir)
  baseline = (0.31, 0.42, 0.53)
  path = tmp_path / "baseline.tsv"
  path.write_text("LAYER,P,R,F\n" + "".join(f"{i},{baseline[0]},{baseline[1]},{baseline[2]}\n"
                                             for i in range(3)))
  # The package's IDF is over all references of a call, so score the batch in one call of
  # same-length pairs (no padding; see the module docstring).
  cands, refs = ["a terrible movie", "a great movie", "it is good"], \
      ["a great film", "a bad movie", "it is bad"]
  lengths = {len(tok.encode(s)) for s in cands + refs}
  assert len(lengths) == 1, lengths
  ref = bert_score.score(cands, refs, model_type=package_dir, num_layers=2, idf=True,
                         rescale_with_baseline=True, baseline_path=str(path), lang="en")
  ours = bertscore.BERTScorer(model, tok, layer=2, idf=True, baseline=baseline,
                                prefix_space=False).score(cands, refs)
  np.testing.assert_allclose(ours, np.stack([t.numpy() for t in ref]), atol=1e-5)


def test_idf_weights_formula():
  w = bertscore.idf_weights([[1, 2, 2], [2, 3]])
  assert w[2] == pytest.approx(np.log(3 / 3)) and w[1] == pytest.approx(np.log(3 / 2))
  assert w[99] == pytest.approx(np.log(3))


def test_causal_layer_states_on_tiny_gpt2(tiny_lm):
  model, tok = tiny_lm
  scorer = bertscore.BERTScorer(model, tok, layer=1)
  p, r, f = scorer.score(["the food was great", "x"], ["the food was great", "y z"])
  assert f[0] == pytest.approx(1.0, abs=1e-5) and p[0] == pytest.approx(1.0, abs=1e-5)
  assert np.isfinite(f).all()


def test_empty_sentence_scores_zero(tiny_roberta_dir):
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  p, r, f = bertscore.BERTScorer(model, tok, layer=2).score(["", "good"], ["good", ""])
  np.testing.assert_array_equal([p, r, f], np.zeros((3, 2)))
