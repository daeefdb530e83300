"""InfoPrompt's losses against NumPy loops written from baselines.md §1.3, and their wiring."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt import gradient
from hpprompt.gradient import infoprompt
from hpprompt.tasks import embedding_task


# ---- NumPy references (loops, written from the transcription of the released code) ---------------

def _log_softmax_first(scores):
  top = max(scores)
  return scores[0] - (top + math.log(sum(math.exp(s - top) for s in scores)))


def ref_head_loss(prompt, head_rows, embeds, mask, gamma=0.1, floor=-2.0):
  num_b, num_t, d = embeds.shape
  v_bar = sum(head_rows[c] for c in range(len(head_rows))) / len(head_rows)
  total = 0.0
  for b in range(num_b):
    p = prompt if prompt.ndim == 2 else prompt[b]
    p_bar = sum(p[j] for j in range(len(p))) / len(p)
    scores = [float(np.dot(p_bar, v_bar)) / math.sqrt(d)]
    scores += [float(np.dot(embeds[b, t], v_bar)) / math.sqrt(d)
               for t in range(num_t) if mask[b, t]]
    logp = _log_softmax_first(scores)
    total += -(logp if floor is None else max(logp, floor))
  return gamma * total / num_b


def ref_rep_loss(z_pos, z_neg, w_o, b_o, ctx, beta=0.2, floor=-2.0):
  num_b, num_k, _ = z_neg.shape
  d = ctx.shape[1]
  u = lambda z: np.array([sum(z[i] * w_o[i, j] for i in range(len(z))) + b_o[j] for j in range(d)])
  total = 0.0
  for b in range(num_b):
    scores = [float(np.dot(u(z_pos[b]), ctx[b])) / math.sqrt(d)]
    scores += [float(np.dot(u(z_neg[b, k]), ctx[b])) / math.sqrt(d) for k in range(num_k)]
    logp = _log_softmax_first(scores)
    total += -(logp if floor is None else max(logp, floor))
  return beta * total / num_b


def ref_kl(mu, log_sigma):
  vals = [-ls + math.exp(ls) ** 2 / 2 + m ** 2 / 2 - 0.5
          for m, ls in zip(np.ravel(mu), np.ravel(log_sigma))]
  return sum(vals) / len(vals)


def _rng_arrays(seed, b=3, t=6, length=4, d=8, c=2):
  rng = np.random.default_rng(seed)
  prompt = rng.normal(size=(length, d)).astype(np.float32) * 2
  rows = rng.normal(size=(c, d)).astype(np.float32) * 2
  embeds = rng.normal(size=(b, t, d)).astype(np.float32) * 2
  mask = rng.random((b, t)) < 0.7
  mask[:, 0] = True
  return prompt, rows, embeds, mask


@pytest.mark.parametrize("floor", [-2.0, None])
@pytest.mark.parametrize("per_example", [False, True])
def test_head_loss_matches_numpy(floor, per_example):
  prompt, rows, embeds, mask = _rng_arrays(0)
  if per_example:
    prompt = np.stack([prompt, -prompt, 0.5 * prompt])
  got = infoprompt.head_loss(prompt, rows, embeds, mask, gamma=0.1, logp_floor=floor)
  np.testing.assert_allclose(got, ref_head_loss(prompt, rows, embeds, mask, 0.1, floor),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("floor", [-2.0, None])
def test_representation_loss_matches_numpy(floor):
  rng = np.random.default_rng(1)
  b, k, m, d = 3, 12, 5, 8
  z_pos, z_neg = rng.normal(size=(b, m)) * 3, rng.normal(size=(b, k, m)) * 3
  w_o, b_o, ctx = rng.normal(size=(m, d)), rng.normal(size=d), rng.normal(size=(b, d)) * 2
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  got = infoprompt.representation_loss(f32(z_pos), f32(z_neg), {"w": f32(w_o), "b": f32(b_o)},
                                       f32(ctx), beta=0.2, logp_floor=floor)
  np.testing.assert_allclose(got, ref_rep_loss(z_pos, z_neg, w_o, b_o, ctx, 0.2, floor),
                             rtol=1e-5, atol=1e-6)


def test_scores_and_kl_match_numpy():
  prompt, rows, embeds, _ = _rng_arrays(2)
  pos, neg = infoprompt.head_scores(prompt, rows, embeds)
  v_bar = rows.mean(0)
  np.testing.assert_allclose(pos, np.full(3, prompt.mean(0) @ v_bar), rtol=1e-5)
  np.testing.assert_allclose(neg, embeds @ v_bar, rtol=1e-5)
  mu, ls = np.random.default_rng(3).normal(size=(2, 4, 5)).astype(np.float32)
  np.testing.assert_allclose(infoprompt.gaussian_kl(mu, ls), ref_kl(mu, ls), rtol=1e-5)


def test_floor_gives_zero_gradient():
  """Examples already worse than the floor contribute no gradient (the code's max(logp, -2))."""
  prompt, rows, embeds, mask = _rng_arrays(4)
  far = -prompt * 50.0                                      # positive score far below the negatives
  grad = lambda p, floor: jax.grad(lambda q: infoprompt.head_loss(
      q, rows, embeds, mask, logp_floor=floor))(p)
  assert float(jnp.abs(grad(far, -2.0)).max()) == 0.0
  assert float(jnp.abs(grad(far, None)).max()) > 0.0


# ---- the model-level loss ------------------------------------------------------------------------

def _method(tiny_lm, **kw):
  model, tok = tiny_lm
  task = embedding_task.EmbeddingTask(model, tok, "{sentence_1} {prompt}", (" terrible", " great"))
  return gradient.InfoPrompt(task, gradient.InfoPromptConfig(prompt_length=3, **kw))


def test_total_loss_wiring(tiny_lm, keyword_examples):
  method = _method(tiny_lm)
  task, state = method.task, method.init(0)
  batch = task.encode(keyword_examples[:8], 3, null=True)
  total, aux = infoprompt.loss(state.params, batch, method.frozen, jax.random.PRNGKey(1),
                               graphdef=task.graphdef, cfg=method.cfg)
  # The LM head classifies: no KL term (it acts only where the bottleneck is the classifier).
  np.testing.assert_allclose(total, aux["task_loss"] + aux["head_loss"] + aux["rep_loss"],
                             rtol=1e-6)
  assert float(aux["kl"]) > 0
  model = task.model
  rows = model.output_embedding()[task.verbalizer_ids]          # frozen verbalizer rows by default
  want = ref_head_loss(np.asarray(state.params["prompt"]), np.asarray(rows),
                       np.asarray(model.embed(batch.null_ids)), np.asarray(batch.null_mask))
  np.testing.assert_allclose(aux["head_loss"], want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(aux["task_loss"], gradient.soft_prompt.cross_entropy(
      method.logits(state.params, batch), batch.labels), rtol=1e-5)


def test_generator_and_variational_head(tiny_lm, keyword_examples):
  method = _method(tiny_lm, prompt_generator=True, variational_head=True)
  task, state = method.task, method.init(0)
  batch = task.encode(keyword_examples[:8], 3, null=True)
  prompts = infoprompt.prompt_of(state.params, batch)
  assert prompts.shape == (8, 3, task.dim)                       # one prompt per example
  assert float(jnp.abs(prompts[0] - prompts[1]).max()) > 0       # (the code gave all example 0's)
  np.testing.assert_allclose(state.params["classes"],
                             task.model.output_embedding()[task.verbalizer_ids])
  total, aux = infoprompt.loss(state.params, batch, method.frozen, jax.random.PRNGKey(1),
                               graphdef=task.graphdef, cfg=method.cfg)
  np.testing.assert_allclose(total, aux["task_loss"] + aux["head_loss"] + aux["rep_loss"]
                             + 0.1 * aux["kl"], rtol=1e-6)          # the classifier's KL acts
  h = embedding_task.read_hidden(task.model, prompts, batch)
  mu = infoprompt.linear(state.params["bottleneck"]["mu"], h)
  want = infoprompt.linear(state.params["bottleneck"]["out"], mu) @ state.params["classes"].T
  np.testing.assert_allclose(method.logits(state.params, batch), want, rtol=1e-4, atol=1e-5)


def test_config_problems():
  cfg = dataclasses.replace(gradient.InfoPromptConfig(), gamma=-1.0, logp_floor=0.5)
  assert {name for name, _ in cfg.problems()} == {"gamma", "logp_floor"}
