"""PEZ: cosine projection; the LM sees exactly the projection; the gradient is taken there."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import gradient
from hpprompt.gradient import pez
from hpprompt.gradient import soft_prompt
from hpprompt.tasks import embedding_task


def _ref_nearest(prompt, table, allowed):
  ids = []
  for p in np.asarray(prompt, np.float64):
    best, best_cos = None, -np.inf
    for v, row in enumerate(np.asarray(table, np.float64)):
      cos = p @ row / (np.linalg.norm(p) * np.linalg.norm(row))
      if allowed[v] and cos > best_cos:
        best, best_cos = v, cos
    ids.append(best)
  return np.asarray(ids)


def test_projection_is_cosine_nearest_allowed_row():
  rng = np.random.default_rng(0)
  table = (rng.normal(size=(50, 6)) * rng.uniform(0.1, 5, size=(50, 1))).astype(np.float32)
  prompt = rng.normal(size=(7, 6)).astype(np.float32)
  allowed = rng.random(50) < 0.6
  ids, projected = pez.project(jnp.asarray(prompt), jnp.asarray(table), jnp.asarray(allowed))
  np.testing.assert_array_equal(ids, _ref_nearest(prompt, table, allowed))
  np.testing.assert_array_equal(projected, table[np.asarray(ids)])   # raw rows, not normalised


@pytest.fixture(scope="module")
def setup(tiny_lm, keyword_examples):
  model, tok = tiny_lm
  task = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", (" terrible", " great"))
  method = gradient.PEZ(task, gradient.PEZConfig(prompt_length=4))
  prompt = jax.random.normal(jax.random.PRNGKey(3), (4, task.dim)) * 0.05
  return method, task, prompt, task.encode(keyword_examples[:8], 4)


def test_forward_sees_exactly_the_projection(setup, monkeypatch):
  method, task, prompt, batch = setup
  seen = []
  original = embedding_task.prompt_embeddings

  def spy(model, p, b):
    x = original(model, p, b)
    seen.append(np.asarray(x))
    return x

  monkeypatch.setattr(embedding_task, "prompt_embeddings", spy)
  with jax.disable_jit():
    pez.loss({"prompt": prompt}, batch, method.frozen, jax.random.PRNGKey(0),
             graphdef=task.graphdef)
  (x,) = seen
  allowed = np.asarray(method.frozen.allowed)
  ids = _ref_nearest(prompt, task.embeddings, allowed)
  table = np.asarray(task.embeddings)
  slot, tokens = np.asarray(batch.slot), np.asarray(task.model.embed(batch.ids))
  for b in range(batch.size):
    for t in range(slot.shape[1]):
      want = table[ids[slot[b, t]]] if slot[b, t] >= 0 else tokens[b, t]
      np.testing.assert_array_equal(x[b, t], want)                     # bit for bit


def test_gradient_is_taken_at_the_projection(setup):
  method, task, prompt, batch = setup
  key = jax.random.PRNGKey(0)
  g_pez = jax.grad(lambda p: pez.loss({"prompt": p}, batch, method.frozen, key,
                                      graphdef=task.graphdef)[0])(prompt)
  # Two steps: project, then the gradient of the plain soft-prompt loss w.r.t. its input there.
  ids = _ref_nearest(prompt, task.embeddings, np.asarray(method.frozen.allowed))
  projected = task.embeddings[ids]
  g_ref = jax.grad(lambda p: soft_prompt.loss({"prompt": p}, batch, method.frozen, key,
                                              graphdef=task.graphdef)[0])(projected)
  assert float(jnp.abs(g_ref).max()) > 0
  np.testing.assert_allclose(g_pez, g_ref, rtol=1e-6, atol=1e-9)


def test_step_updates_the_continuous_prompt(setup):
  method, task, prompt, batch = setup
  state = method.init(0).replace(params={"prompt": prompt})
  state = state.replace(opt_state=method.optimizer.init(state.params))
  new, metrics = method.train_step(state, batch)
  np.testing.assert_array_equal(metrics["ids"], method.ids({"prompt": prompt}))
  assert float(jnp.abs(new.params["prompt"] - prompt).max()) > 0
  hard = method.hard_prompt(new.params)
  assert hard["ids"] == [int(i) for i in method.ids(new.params)]
  assert method.describe(new.params) == hard["prompt"]


def test_round_trip_vocabulary(tiny_lm):
  _, tok = tiny_lm
  keep = embedding_task.round_trip_tokens(tok, tok.vocab_size)
  for i in range(tok.vocab_size):
    assert keep[i] == (tok.encode(tok.decode([i])) == [i])
  assert keep.sum() > 0.5 * tok.vocab_size
  assert not keep[[i for i in range(tok.vocab_size) if "\ufffd" in tok.decode([i])]].any()
