"""GPT-2: conversion from a tiny random transformers model, parity, KV cache, prefix caching, errors."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.models import hub
from hpprompt.models.convert.core import ConversionError
from tests.models import hf_utils
from tests.models.hf_utils import transformers

VOCAB = 97


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  path = tmp_path_factory.mktemp("tiny_gpt2")
  cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                bos_token_id=0, eos_token_id=0)
  torch_model = hf_utils.save_tiny(transformers.GPT2LMHeadModel, cfg, path)
  return path, torch_model, hub.load_model(str(path))


def _fwd(model):
  """Jitted forward (eager JAX compiles every op for every new shape: slower than one compile)."""
  return jax.jit(lambda ids, mask=None, cache=None: model(ids, attention_mask=mask, cache=cache))


@pytest.mark.parametrize("pad", ["right", "left"])
def test_logits_match_pytorch(tiny, pad):
  path, torch_model, model = tiny
  ids, mask = hf_utils.random_batch(np.random.default_rng(0), VOCAB, 3, 11, pad)
  out = _fwd(model)(jnp.asarray(ids), jnp.asarray(mask))
  hf_utils.assert_close_on_mask(out.logits, hf_utils.torch_logits(torch_model, ids, mask), mask)
  assert out.hidden.shape == (3, 11, 32)


def test_inputs_embeds_equal_ids(tiny):
  _, _, model = tiny
  ids = jnp.arange(10, dtype=jnp.int32)[None] % VOCAB
  a = model(ids).logits
  b = model(inputs_embeds=model.embed(ids)).logits
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_kv_cache_decoding_equals_full_forward(tiny):
  _, _, model = tiny
  ids, mask = hf_utils.random_batch(np.random.default_rng(1), VOCAB, 2, 12, "right")
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  fwd = _fwd(model)
  full = fwd(ids, mask).logits
  step = jax.jit(lambda c, i, m: model(i, attention_mask=m, cache=c))
  logits = hf_utils.incremental_logits(step, model.init_cache(2, 12), ids, mask, prefill=7)
  hf_utils.assert_close_on_mask(logits, full, np.asarray(mask), atol=1e-5)


def test_prefix_caching_equals_full_forward(tiny):
  """Right-padded prefixes encoded once, then several continuations per prefix."""
  _, _, model = tiny
  rng = np.random.default_rng(2)
  prefix, pmask = hf_utils.random_batch(rng, VOCAB, 2, 8, "right")
  conts = rng.integers(0, VOCAB, size=(3, 4)).astype(np.int32)      # 3 continuations
  fwd = _fwd(model)
  cache = fwd(jnp.asarray(prefix), jnp.asarray(pmask), model.init_cache(2, 12)).cache
  rows = jnp.repeat(jnp.arange(2), 3)                                 # [p0c0, p0c1, ..., p1c2]
  out = fwd(jnp.asarray(np.tile(conts, (2, 1))), None, cache.take(rows))
  for r in range(6):
    p, c = divmod(r, 3)
    real = prefix[p][pmask[p]]
    seq = jnp.asarray(np.concatenate([real, conts[c]]))[None]
    want = fwd(seq).logits[0, len(real):]
    np.testing.assert_allclose(out.logits[r], want, atol=1e-5)


def test_bfloat16_runs(tiny):
  path, _, model = tiny
  model16 = hub.load_model(str(path), dtype=jnp.bfloat16)
  ids = jnp.arange(8, dtype=jnp.int32)[None]
  a = model(ids).logits
  b = model16(ids).logits
  assert b.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(b, np.float32), a, atol=0.1)


def test_loader_errors(tiny, tmp_path):
  path, _, _ = tiny
  with pytest.raises(ConversionError, match="no config.json"):
    hub.load_model(str(tmp_path))
  bad = tmp_path / "bad"
  bad.mkdir()
  cfg = json.loads((path / "config.json").read_text())
  (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "t5"}))
  with pytest.raises(ConversionError, match="unsupported model_type 't5'"):
    hub.load_model(str(bad))
  (bad / "config.json").write_text(json.dumps({**cfg, "n_embd": 48}))
  (bad / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
  with pytest.raises(ConversionError, match="shape mismatch"):
    hub.load_model(str(bad))
  (bad / "config.json").write_text(json.dumps({**cfg, "scale_attn_by_inverse_layer_idx": True}))
  with pytest.raises(ConversionError, match="unsupported config option"):
    hub.load_model(str(bad))
  (bad / "config.json").write_text(json.dumps(cfg))
  (bad / "model.safetensors").unlink()
  with pytest.raises(ConversionError, match="no model.safetensors"):
    hub.load_model(str(bad))


def test_shared_prefix_equals_full_forward(tiny):
  """SharedPrefix scores G continuations per prefix without copying the prefix cache."""
  from hpprompt.models.cache import SharedPrefix
  _, _, model = tiny
  rng = np.random.default_rng(3)
  prefix, pmask = hf_utils.random_batch(rng, VOCAB, 3, 9, "right")
  conts, cmask = hf_utils.random_batch(rng, VOCAB, 2, 5, "right")     # 2 continuations, padded
  fwd = _fwd(model)
  cache = fwd(jnp.asarray(prefix), jnp.asarray(pmask), model.init_cache(3, 9)).cache
  shared = SharedPrefix.from_cache(cache, group=2)
  out = jax.jit(lambda ids, m: model(ids, attention_mask=m, cache=shared))(
      jnp.asarray(np.tile(conts, (3, 1))), jnp.asarray(np.tile(cmask, (3, 1))))
  for r in range(6):
    p, c = divmod(r, 2)
    real_p, real_c = prefix[p][pmask[p]], conts[c][cmask[c]]
    want = fwd(jnp.asarray(np.concatenate([real_p, real_c]))[None]).logits[0, len(real_p):]
    np.testing.assert_allclose(out.logits[r][cmask[c]], want, atol=1e-5)
