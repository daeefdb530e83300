"""Embedding-level inputs: a soft prompt equal to a hard prompt's embeddings gives the string
scorer's logits (causal with cached inputs, causal with the prompt first, masked LM); inits."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.gradient import soft_prompt
from hpprompt.tasks import embedding_task
from hpprompt.tasks import scoring

VERBALIZERS = (" terrible", " great")


def _short(examples, n=8, limit=60):
  return [e for e in examples if len(e.text) < limit][:n]


def _assert_soft_equals_hard(task, scorer, examples, prompts):
  """Soft prompt = a hard prompt's token embeddings gives the string scorer's class logits."""
  for prompt in prompts:
    want = scorer.class_logits([prompt], examples)[:, 0]
    ids = task.hard_prompt_ids(prompt)
    got = task.logits(task.embeddings[ids], task.encode(examples, len(ids)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=prompt)


@pytest.mark.parametrize("template, cached", [
    ("{sentence_1} {prompt}", True),                      # CausalScorer, inputs cached once
    ("{sentence_1} It was {prompt} .", True),             # a tail after the prompt
    ("{prompt} {sentence_1} It was", False),              # FullScorer, prompt before the input
])
def test_soft_equals_hard_causal(tiny_lm, sst2, template, cached):
  model, tok = tiny_lm
  examples = _short(sst2["train"])
  task = embedding_task.EmbeddingTask(model, tok, template, VERBALIZERS)
  assert task.cached == cached
  _assert_soft_equals_hard(task, scoring.make_scorer(model, tok, template, VERBALIZERS), examples,
                           ("great movie", "It was", "okay"))


def test_soft_equals_hard_masked(tiny_mlm, sst2):
  model, tok = tiny_mlm
  examples = _short(sst2["train"])
  template = "{sentence_1} {prompt} <mask> ."
  task = embedding_task.EmbeddingTask(model, tok, template, VERBALIZERS)
  assert not task.cached and task.before == [0] and task.after == [2]
  _assert_soft_equals_hard(task, scoring.make_scorer(model, tok, template, VERBALIZERS), examples,
                           ("great movie", "It was"))


def test_cached_equals_full_and_per_example_prompts(tiny_lm, sst2):
  model, tok = tiny_lm
  examples = _short(sst2["train"])
  cached = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", VERBALIZERS)
  full = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", VERBALIZERS,
                                      cache_inputs=False)
  prompt = jax.random.normal(jax.random.PRNGKey(0), (4, cached.dim)) * 0.1
  a = cached.logits(prompt, cached.encode(examples, 4))
  b = full.logits(prompt, full.encode(examples, 4))
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # A per-example prompt [B, L, D] equal to the shared one gives the same logits.
  per = jnp.broadcast_to(prompt, (len(examples),) + prompt.shape)
  np.testing.assert_allclose(full.logits(per, full.encode(examples, 4)), b, rtol=1e-6, atol=1e-7)


def test_predict_restores_order_and_take(tiny_lm, sst2):
  model, tok = tiny_lm
  task = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", VERBALIZERS)
  examples = sst2["dev"][:12]
  prompt = task.embeddings[:3]
  want = np.asarray(task.logits(prompt, task.encode(examples, 3)))
  np.testing.assert_allclose(task.predict(lambda b: task.logits(prompt, b), examples, 3,
                                          chunk_size=5), want, rtol=1e-5, atol=1e-6)
  rows = np.asarray([3, 0, 7])
  sub = task.place_batch(embedding_task.take(task.encode(examples, 3), rows))
  np.testing.assert_allclose(task.logits(prompt, sub), want[rows], rtol=1e-5, atol=1e-6)


def test_prompt_text_round_trip(tiny_lm):
  model, tok = tiny_lm
  task = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", VERBALIZERS)
  ids = task.hard_prompt_ids("great movie")
  assert task.prompt_text(ids) == ("great movie", True)


def test_initialisations():
  key = jax.random.PRNGKey(0)
  table = jax.random.normal(key, (6000, 8))
  u = soft_prompt.init_prompt(key, "uniform", table, 50, scale=0.5)
  assert u.shape == (50, 8) and float(u.min()) < -0.4 and float(u.max()) > 0.4
  assert float(jnp.abs(u).max()) <= 0.5
  v = np.asarray(soft_prompt.init_prompt(key, "vocab", table, 40))
  rows = [int(np.argmin(np.abs(np.asarray(table) - r).sum(1))) for r in v]
  assert len(set(rows)) == 40 and max(rows) < 5000                    # without replacement
  c = soft_prompt.init_prompt(key, "class", table, 5, label_ids=[[7, 9], [11]])
  np.testing.assert_allclose(c[0], (table[7] + table[9]) / 2, rtol=1e-6)
  np.testing.assert_allclose(c[1], table[11])
  with pytest.raises(ValueError):
    soft_prompt.init_prompt(key, "zeros", table, 5)
