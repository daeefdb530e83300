"""Packed embedding-level batches (several [prompt + example] sequences per row) give the padded
layout's logits, losses and gradients w.r.t. the prompt, for causal and masked task LMs."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import gradient
from hpprompt.gradient import infoprompt
from hpprompt.gradient import soft_prompt
from hpprompt.tasks import embedding_task
from hpprompt.tasks import packing
from hpprompt.tasks.embedding_task import take

VERBALIZERS = (" terrible", " great")
TOL = {"rtol": 1e-5, "atol": 1e-5}


def test_pack_and_unpack_against_brute_force():
  rng = np.random.default_rng(0)
  seqs = [rng.integers(1, 50, rng.integers(3, 30)).tolist() for _ in range(23)]
  starts = [int(rng.integers(0, len(s) - 2)) for s in seqs]
  reads = [int(rng.integers(0, len(s))) for s in seqs]
  out = packing.pack(seqs, starts, reads, 2, 32, pad_id=0, devices=1)
  rows = out["ids"].shape[0]
  assert rows == packing.row_bucket(rows) and out["ids"].shape[1] == 32
  assert (out["segments"] > 0).sum() == sum(map(len, seqs))         # every token once, no more
  flat = {k: out[k].reshape(-1) for k in ("ids", "slot", "example")}
  for i, s in enumerate(seqs):
    first = int(out["first"][i])
    np.testing.assert_array_equal(flat["ids"][first:first + len(s)], s)
    np.testing.assert_array_equal(flat["example"][first:first + len(s)], i)
    np.testing.assert_array_equal(np.flatnonzero(flat["slot"][first:first + len(s)] >= 0),
                                  [starts[i], starts[i] + 1])
    assert out["read"][i] == first + reads[i]
  back = packing.unpack(out["ids"], out["segments"], out["slot"], out["read"])
  assert back == (seqs, starts, reads, 2)


def test_row_bucket():
  want = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
  for n in range(1, 33):
    assert packing.row_bucket(n) == min(b for b in want if b >= n)
  assert packing.row_bucket(5, devices=4) == 8


def _tasks(model, tok, template):
  kw = {"cache_inputs": False}   # rows of 32+ slots: the tiny models' attention is cheap there
  return (embedding_task.EmbeddingTask(model, tok, template, VERBALIZERS, pack_length=32, **kw),
          embedding_task.EmbeddingTask(model, tok, template, VERBALIZERS, pack_length=None, **kw))


def _soft_loss(task, prompt, batch):
  frozen = soft_prompt.Frozen(task.state, task.verbalizer_ids)
  return soft_prompt.loss({"prompt": prompt}, batch, frozen, jax.random.PRNGKey(0),
                          graphdef=task.graphdef)


@pytest.fixture(scope="module", params=["causal", "masked"])
def setup(request, steep_lm, tiny_mlm, sst2):
  if request.param == "causal":   # prompt first: full sequences, no input cache
    (model, tok), template = steep_lm, "{prompt} {sentence_1} It was"
  else:
    (model, tok), template = tiny_mlm, "{sentence_1} {prompt} <mask> ."
  examples = [e for e in sst2["train"] if len(e.text) < 100][:12]   # 8 to 32 tokens
  return (*_tasks(model, tok, template), examples)


def test_logits_loss_and_gradient_equal_the_padded_layout(setup):
  packed, padded, examples = setup
  length = 4   # (per-example prompts: the InfoPrompt test's generator)
  prompt = jax.random.normal(jax.random.PRNGKey(1), (length, packed.dim)) * 0.5
  a, b = packed.encode(examples, length), padded.encode(examples, length)
  assert a.segments is not None and b.segments is None
  assert a.ids.size < b.ids.size                                     # fewer slots computed
  np.testing.assert_allclose(packed.logits(prompt, a), padded.logits(prompt, b), **TOL)
  (la, _), ga = jax.value_and_grad(_soft_loss, argnums=1, has_aux=True)(packed, prompt, a)
  (lb, _), gb = jax.value_and_grad(_soft_loss, argnums=1, has_aux=True)(padded, prompt, b)
  np.testing.assert_allclose(la, lb, **TOL)
  scale = float(jnp.abs(gb).max())
  print(f"max |grad| {scale:.3g}, max |difference| {float(jnp.abs(ga - gb).max()):.3g}")
  np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-5 * scale)  # relative to the gradient


def test_take_and_eval_padding_rows(setup):
  packed, padded, examples = setup
  prompt = jax.random.normal(jax.random.PRNGKey(2), (3, packed.dim)) * 0.5
  want = np.asarray(padded.logits(prompt, padded.encode(examples, 3)))
  rows = np.asarray([5, 0, 11, 3, 7])
  sub = packed.place_batch(take(packed.encode(examples, 3), rows))
  np.testing.assert_allclose(packed.logits(prompt, sub), want[rows], **TOL)
  got = packed.predict(lambda b: packed.logits(prompt, b), examples, 3, chunk_size=6)
  np.testing.assert_allclose(got, want, **TOL)
  batch = packed.encode(examples[:5], 3, rows=8)                     # eval chunk padded to 8
  assert batch.size == 8 and batch.ids.shape[0] < 8                # the 3 copies take no slots
  np.testing.assert_allclose(packed.logits(prompt, batch)[:5], want[:5], **TOL)


def test_equal_lengths_stay_padded(setup, sst2):
  packed, padded, _ = setup
  text = sst2["train"][0].text
  examples = [dataclasses.replace(sst2["train"][0], text=text[:40 + i]) for i in range(4)]
  prompt = jax.random.normal(jax.random.PRNGKey(4), (3, packed.dim)) * 0.5
  a, b = packed.encode(examples, 3), padded.encode(examples, 3)
  assert a.segments is None                                          # packing would cost more
  np.testing.assert_allclose(packed.logits(prompt, a), padded.logits(prompt, b), **TOL)


def test_shapes_stay_few(setup):
  packed, _, examples = setup
  rng = np.random.default_rng(0)
  full = packed.encode(examples, 5)
  shapes = {take(full, rng.choice(len(examples), 8, replace=False)).ids.shape
            for _ in range(20)}
  assert len(shapes) <= 2, shapes                                    # rows are bucketed


def test_infoprompt_loss_and_gradients_equal_the_padded_layout(setup):
  packed, padded, examples = setup
  cfg = infoprompt.InfoPromptConfig(prompt_length=3, prompt_generator=True, variational_head=True,
                                    logp_floor=None)
  methods = [gradient.METHODS["infoprompt"](task, cfg) for task in (packed, padded)]
  params = methods[0].init(0).params
  values = []
  for method in methods:
    batch = method.task.encode(examples, 3, null=True)
    assert (batch.segments is None) == (method.task is padded)
    fn = lambda p, m=method, b=batch: infoprompt.loss(p, b, m.frozen, jax.random.PRNGKey(3),
                                                      graphdef=m.task.graphdef, cfg=m.cfg)
    (total, aux), grads = jax.value_and_grad(fn, has_aux=True)(params)
    values.append((total, aux["logits"], batch.null_hidden, batch.null_summary, grads))
  for x, y in zip(*values):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, **TOL), x, y)


def test_pad_rows_and_round_up_against_brute_force():
  rng = np.random.default_rng(3)
  seqs = [list(rng.integers(1, 50, rng.integers(0, 9))) for _ in range(7)]
  out = packing.pad_rows(seqs, 10, -1)
  assert out.shape == (7, 10) and out.dtype == np.int32
  for row, s in zip(out, seqs):
    assert list(row) == s + [-1] * (10 - len(s))
  for n in range(0, 40):
    for step in (1, 3, 8):
      r = packing.round_up(n, step)
      assert r % step == 0 and r >= max(n, step) and r - step < max(n, step)
