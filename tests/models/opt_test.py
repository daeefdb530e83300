"""OPT: conversion from tiny random transformers models (opt-125m-like pre-LN, opt-350m-like post-LN
with project_in/out), parity, KV cache, prefix caching, key normalisation and loader errors."""
import json
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from hpprompt.models import hub
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.opt import OPTConfig
from tests.models import hf_utils
from tests.models.hf_utils import torch
from tests.models.hf_utils import transformers

VOCAB = 97
HIDDEN = 32
VARIANTS = {
    "125m": dict(),                                                     # pre-LN, final norm
    "350m": dict(do_layer_norm_before=False, word_embed_proj_dim=16),   # post-LN, project_in/out
    # Options no released size uses: no biases, norms without parameters, no final norm.
    "plain": dict(enable_bias=False, layer_norm_elementwise_affine=False,
                  _remove_final_layer_norm=True),
}


def save_random(path, seed: int = 0, **options):
  """A tiny random OPTForCausalLM with every parameter perturbed (non-trivial norms and biases,
  logits of order 1), saved with save_pretrained; returns the PyTorch model."""
  cfg = transformers.OPTConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2,
                               num_attention_heads=4, ffn_dim=64, max_position_embeddings=64,
                               pad_token_id=1, bos_token_id=2, eos_token_id=2, init_std=0.1,
                               **options)
  torch.manual_seed(seed)
  model = transformers.OPTForCausalLM(cfg).eval()
  with torch.no_grad():
    for p in model.parameters():   # tied head: embed_tokens is perturbed once
      p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(str(path))
  return model


class Tiny(NamedTuple):
  path: Any
  torch_model: Any
  model: Any
  forward: Any   # jitted (ids, mask) -> LMOutput: eager JAX recompiles every op per new shape
  step: Any      # jitted (cache, ids, mask) -> LMOutput


@pytest.fixture(scope="module")
def build(tmp_path_factory):
  """variant -> Tiny, each built once per module."""
  built = {}

  def get(variant: str) -> Tiny:
    if variant not in built:
      path = tmp_path_factory.mktemp(f"tiny_opt_{variant}")
      torch_model = save_random(path, **VARIANTS[variant])
      model = hub.load_model(str(path))
      built[variant] = Tiny(path, torch_model, model,
                            jax.jit(lambda ids, mask: model(ids, attention_mask=mask)),
                            jax.jit(lambda c, ids, mask: model(ids, attention_mask=mask, cache=c)))
    return built[variant]
  return get


@pytest.fixture(params=["125m", "350m"])
def tiny(request, build) -> Tiny:
  return build(request.param)


def torch_default_positions(model, ids, mask):
  """Logits when HF OPT derives positions itself: cumsum(mask) * mask - 1 (+ offset 2 inside
  OPTLearnedPositionalEmbedding); equal to ours at every real token, whichever side is padded."""
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long))
  return out.logits.numpy()


def test_hub_configs():
  common = {"activation_dropout": 0.0, "activation_function": "relu", "architectures":
            ["OPTForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 2, "dropout": 0.1,
            "eos_token_id": 2, "init_std": 0.02, "layerdrop": 0.0, "max_position_embeddings": 2048,
            "model_type": "opt", "pad_token_id": 1, "prefix": "</s>", "torch_dtype": "float16",
            "use_cache": True, "vocab_size": 50272}
  c125 = OPTConfig.from_hf_config({**common, "_remove_final_layer_norm": False,
                                   "do_layer_norm_before": True, "ffn_dim": 3072,
                                   "hidden_size": 768, "num_attention_heads": 12,
                                   "num_hidden_layers": 12, "word_embed_proj_dim": 768})
  assert (c125.dim, c125.embed_dim, c125.pre_norm, c125.final_norm) == (768, 768, True, True)
  c350 = OPTConfig.from_hf_config({**common, "do_layer_norm_before": False, "ffn_dim": 4096,
                                   "hidden_size": 1024, "num_attention_heads": 16,
                                   "num_hidden_layers": 24, "word_embed_proj_dim": 512})
  assert (c350.dim, c350.embed_dim, c350.pre_norm, c350.final_norm) == (1024, 512, False, False)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("pad", ["right", "left"])
def test_logits_match_pytorch(build, variant, pad):
  _, torch_model, model, forward, _ = build(variant)
  ids, mask = hf_utils.random_batch(np.random.default_rng(0), VOCAB, 3, 11, pad)
  out = forward(jnp.asarray(ids), jnp.asarray(mask))
  theirs = hf_utils.torch_logits(torch_model, ids, mask)   # explicit position ids: honoured by OPT
  assert theirs[mask].std() > 0.2                          # a meaningful 1e-4 comparison
  hf_utils.assert_close_on_mask(out.logits, theirs, mask)
  hf_utils.assert_close_on_mask(out.logits, torch_default_positions(torch_model, ids, mask), mask)
  # hidden = the LM head's input: HF's last_hidden_state (after final norm and project_out).
  with torch.no_grad():
    hidden = torch_model.model(input_ids=torch.tensor(ids, dtype=torch.long),
                               attention_mask=torch.tensor(mask, dtype=torch.long)
                               ).last_hidden_state.numpy()
  assert out.hidden.shape == (3, 11, model.config.embed_dim)
  hf_utils.assert_close_on_mask(out.hidden, hidden, mask)


def test_inputs_embeds_equal_ids(tiny):
  _, torch_model, model, _, _ = tiny
  ids = jnp.arange(10, dtype=jnp.int32)[None] % VOCAB
  embeds = model.embed(ids)   # raw token embeddings, before project_in
  with torch.no_grad():
    want = torch_model.get_input_embeddings()(torch.tensor(np.asarray(ids), dtype=torch.long))
  np.testing.assert_allclose(embeds, want.numpy(), atol=1e-6)
  assert model.output_embedding().shape == (VOCAB, model.config.embed_dim)
  a, b = jax.jit(lambda i: (model(i).logits, model(inputs_embeds=model.embed(i)).logits))(ids)
  np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("pad", ["right", "left"])
def test_kv_cache_decoding_equals_full_forward(tiny, pad):
  _, _, model, forward, step = tiny
  ids, mask = hf_utils.random_batch(np.random.default_rng(1), VOCAB, 2, 12, pad)
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  full = forward(ids, mask).logits
  logits = hf_utils.incremental_logits(step, model.init_cache(2, 12), ids, mask, prefill=7)
  hf_utils.assert_close_on_mask(logits, full, np.asarray(mask), atol=1e-5)


def test_prefix_caching_equals_full_forward(tiny):
  """Right-padded prefixes encoded once, then several continuations per prefix."""
  _, _, model, forward, step = tiny
  rng = np.random.default_rng(2)
  prefix, pmask = hf_utils.random_batch(rng, VOCAB, 2, 8, "right")
  conts = rng.integers(0, VOCAB, size=(3, 4)).astype(np.int32)      # 3 continuations
  cache = step(model.init_cache(2, 12), jnp.asarray(prefix), jnp.asarray(pmask)).cache
  rows = jnp.repeat(jnp.arange(2), 3)                                 # [p0c0, p0c1, ..., p1c2]
  out = step(cache.take(rows), jnp.asarray(np.tile(conts, (2, 1))), jnp.ones((6, 4), bool))
  # Reference: each prefix + continuation, right-padded to 12, in one uncached forward.
  seqs, masks, starts = np.zeros((6, 12), np.int32), np.zeros((6, 12), bool), []
  for r in range(6):
    p, c = divmod(r, 3)
    seq = np.concatenate([prefix[p][pmask[p]], conts[c]])
    seqs[r, :len(seq)], masks[r, :len(seq)] = seq, True
    starts.append(len(seq) - 4)
  full = forward(jnp.asarray(seqs), jnp.asarray(masks)).logits
  want = np.stack([full[r, s:s + 4] for r, s in enumerate(starts)])
  np.testing.assert_allclose(out.logits, want, atol=1e-5)


def test_bfloat16_runs(tiny):
  path, _, _, forward, _ = tiny
  model16 = hub.load_model(str(path), dtype=jnp.bfloat16)
  ids, mask = jnp.arange(8, dtype=jnp.int32)[None], jnp.ones((1, 8), bool)
  a = forward(ids, mask).logits
  b = jax.jit(lambda i: model16(i).logits)(ids)
  assert b.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(b, np.float32), a, atol=0.15)


def test_opt_model_checkpoint_keys(build, tmp_path):
  """Hub checkpoints saved from OPTModel have 'decoder.*' keys (no 'model.' prefix)."""
  _, torch_model, model, _, _ = build("350m")
  torch_model.model.save_pretrained(str(tmp_path))
  assert all(k.startswith("decoder.") for k in load_file(str(tmp_path / "model.safetensors")))
  jax.tree.map(np.testing.assert_array_equal, nnx.state(hub.load_model(str(tmp_path))),
               nnx.state(model))


def test_loader_errors(build, tmp_path):
  path = build("350m").path
  cfg = json.loads((path / "config.json").read_text())
  tensors = load_file(str(path / "model.safetensors"))

  def load(config, extra=None):
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file({**tensors, **(extra or {})}, str(tmp_path / "model.safetensors"))
    return hub.load_model(str(tmp_path))

  with pytest.raises(ConversionError, match="unknown config option some_new_option"):
    load({**cfg, "some_new_option": 1})
  with pytest.raises(ConversionError, match="unsupported config option tie_word_embeddings"):
    load({**cfg, "tie_word_embeddings": False})
  with pytest.raises(ConversionError, match="unsupported config option activation_function"):
    load({**cfg, "activation_function": "tanh"})
  with pytest.raises(ConversionError, match="shape mismatch for 'model.decoder.embed_tokens"):
    load({**cfg, "word_embed_proj_dim": 24})
  with pytest.raises(ConversionError, match="not a multiple of num_attention_heads"):
    load({**cfg, "num_attention_heads": 5})
  # A pre-LN config needs the decoder's final norm, which this post-LN checkpoint lacks.
  with pytest.raises(ConversionError, match=r"missing key 'model\.decoder\.final_layer_norm\."):
    load({**cfg, "do_layer_norm_before": True})
  extra = {"model.decoder.layers.0.self_attn.rotary.weight": np.zeros(3, np.float32)}
  with pytest.raises(ConversionError, match="unexpected checkpoint key"):
    load(cfg, extra)
  # HF drops a final norm the post-LN model does not have; so do we.
  norm = {f"model.decoder.final_layer_norm.{p}": np.ones(HIDDEN, np.float32)
          for p in ("weight", "bias")}
  assert load(cfg, norm).final_norm is None
