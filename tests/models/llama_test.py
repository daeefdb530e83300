"""Llama: conversion from tiny random transformers models (tied / untied, biases, llama3 RoPE) and
from a tiny GGUF written like llama.cpp; parity, KV cache, prefix caching, loader errors."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.models import hub
from hpprompt.models import llama
from hpprompt.models.cache import SharedPrefix
from hpprompt.models.convert.core import ConversionError
from tests.models import hf_utils
from tests.models.hf_utils import torch
from tests.models.hf_utils import transformers

# Byte-level BPE vocabulary for the GGUF tests: control tokens, ASCII, 'Ġ' = space, merges.
MERGES = ["h e", "l l", "he ll", "hell o"]
TOKENS = (["<|endoftext|>", "<|im_start|>"] + [chr(c) for c in range(33, 127)] + ["Ġ"]
          + [m.replace(" ", "") for m in MERGES])
VOCAB = len(TOKENS)   # 101

VARIANTS = {
    "tied": dict(tie_word_embeddings=True),
    "untied_bias": dict(tie_word_embeddings=False, attention_bias=True, mlp_bias=True),
    "llama3_rope": dict(tie_word_embeddings=False, max_position_embeddings=64, rope_parameters={
        "rope_type": "llama3", "rope_theta": 10_000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
}


def tiny_config(**kwargs):
  base = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
              rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=1, eos_token_id=0,
              pad_token_id=0)
  return transformers.LlamaConfig(**{**base, **kwargs})


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def tiny(request, tmp_path_factory):
  path = tmp_path_factory.mktemp(f"tiny_llama_{request.param}")
  torch_model = hf_utils.save_tiny(transformers.LlamaForCausalLM,
                                   tiny_config(**VARIANTS[request.param]), path)
  if request.param == "untied_bias":   # biases are zero-initialised: make them matter
    with torch.no_grad():
      for name, p in torch_model.named_parameters():
        if name.endswith("bias"):
          p.normal_(0, 0.1)
    torch_model.save_pretrained(str(path))
  return path, torch_model, hub.load_model(str(path))


@pytest.mark.parametrize("pad", ["right", "left"])
def test_logits_match_pytorch(tiny, pad):
  _, torch_model, model = tiny
  ids, mask = hf_utils.random_batch(np.random.default_rng(0), VOCAB, 3, 11, pad)
  out = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  hf_utils.assert_close_on_mask(out.logits, hf_utils.torch_logits(torch_model, ids, mask), mask)
  assert out.hidden.shape == (3, 11, 32)


def test_config(tiny):
  path, _, model = tiny
  cfg = model.config
  assert (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim) == (4, 2, 8, 64)
  tied = json.loads((path / "config.json").read_text())["tie_word_embeddings"]
  assert cfg.tie_embeddings == tied and (model.lm_head is None) == tied


def test_inputs_embeds_equal_ids(tiny):
  _, _, model = tiny
  ids = jnp.arange(10, dtype=jnp.int32)[None] % VOCAB
  np.testing.assert_allclose(model(ids).logits, model(inputs_embeds=model.embed(ids)).logits,
                             atol=1e-6)


def test_kv_cache_decoding_equals_full_forward(tiny):
  _, _, model = tiny
  ids, mask = hf_utils.random_batch(np.random.default_rng(1), VOCAB, 2, 12, "right")
  ids, mask = jnp.asarray(ids), jnp.asarray(mask)
  full = model(ids, attention_mask=mask).logits
  step = jax.jit(lambda c, i, m: model(i, attention_mask=m, cache=c))
  logits = hf_utils.incremental_logits(step, model.init_cache(2, 12), ids, mask, prefill=7)
  hf_utils.assert_close_on_mask(logits, full, np.asarray(mask), atol=1e-5)


def test_prefix_caching_equals_full_forward(tiny):
  """Right-padded prefixes encoded once, then continuations per prefix (take / SharedPrefix)."""
  _, _, model = tiny
  rng = np.random.default_rng(2)
  prefix, pmask = hf_utils.random_batch(rng, VOCAB, 2, 8, "right")
  conts = rng.integers(0, VOCAB, size=(3, 4)).astype(np.int32)
  cache = model(jnp.asarray(prefix), attention_mask=jnp.asarray(pmask),
                cache=model.init_cache(2, 12)).cache
  taken = model(jnp.asarray(np.tile(conts, (2, 1))), cache=cache.take(jnp.repeat(jnp.arange(2), 3)))
  shared = model(jnp.asarray(np.tile(conts, (2, 1))), cache=SharedPrefix.from_cache(cache, group=3))
  # Reference: the 6 unpadded [prefix; continuation] sequences, right-padded into one batch.
  full = [np.concatenate([prefix[p][pmask[p]], conts[c]]) for p in range(2) for c in range(3)]
  ids = np.zeros((6, max(map(len, full))), np.int32)
  mask = np.zeros(ids.shape, bool)
  for r, seq in enumerate(full):
    ids[r, :len(seq)], mask[r, :len(seq)] = seq, True
  want = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits
  for r, seq in enumerate(full):
    np.testing.assert_allclose(taken.logits[r], want[r, len(seq) - 4:len(seq)], atol=1e-5)
    np.testing.assert_allclose(shared.logits[r], want[r, len(seq) - 4:len(seq)], atol=1e-5)


def test_bfloat16_runs(tiny):
  path, _, model = tiny
  model16 = hub.load_model(str(path), dtype=jnp.bfloat16)
  ids = jnp.arange(8, dtype=jnp.int32)[None]
  b = model16(ids).logits
  assert b.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(b, np.float32), model(ids).logits, atol=0.1)


def test_rope_config_formats():
  """transformers 4 wrote rope_theta / rope_scaling at the top level; 5 writes rope_parameters."""
  base = tiny_config().to_dict()
  base.pop("rope_parameters")
  old = llama.LlamaConfig.from_hf_config({**base, "rope_theta": 5e5, "rope_scaling": {
      "type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
      "original_max_position_embeddings": 8192}})
  assert old.rope_theta == 5e5
  assert old.rope_scaling == llama.Llama3RopeScaling(8.0, 1.0, 4.0, 8192)
  plain = llama.LlamaConfig.from_hf_config({**base, "rope_theta": 1e5, "rope_scaling": None})
  assert (plain.rope_theta, plain.rope_scaling) == (1e5, None)


def test_loader_errors(tmp_path):
  path = tmp_path / "ok"
  hf_utils.save_tiny(transformers.LlamaForCausalLM, tiny_config(), path)
  cfg = json.loads((path / "config.json").read_text())
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())

  def expect(match, **changes):
    (bad / "config.json").write_text(json.dumps({**cfg, **changes}))
    with pytest.raises(ConversionError, match=match):
      hub.load_model(str(bad))

  for kind in ("linear", "dynamic", "yarn"):
    expect(f"unsupported RoPE scaling rope_type='{kind}'",
           rope_parameters={"rope_type": kind, "rope_theta": 1e4, "factor": 2.0})
  expect("unsupported RoPE scaling rope_type='linear'",
         rope_scaling={"type": "linear", "factor": 2.0})
  expect("unsupported RoPE scaling rope_type='llama3'",           # incomplete llama3 parameters
         rope_parameters={"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0})
  expect("unknown config option sliding_window", sliding_window=16)
  expect("unsupported config option pretraining_tp=2", pretraining_tp=2)
  expect("shape mismatch", hidden_size=48, head_dim=8)
  expect("missing key 'lm_head.weight'", tie_word_embeddings=False)
  expect(r"missing key 'model\.layers\.0\.self_attn\.[qkvo]_proj\.bias'", attention_bias=True)


# ---------------------------------------------------------------------------------------------
# GGUF: a tiny random Llama written the way llama.cpp's convert_hf_to_gguf.py writes it.


def _permute(w, n_head):
  """llama.cpp's permutation of q/k rows for interleaved rotary pairs."""
  return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def write_gguf(path, torch_model, *, arch="llama", extra_kv=(), extra_tensors=None):
  gguf = pytest.importorskip("gguf")
  c = torch_model.config
  w = gguf.GGUFWriter(str(path), arch=arch)
  w.add_block_count(c.num_hidden_layers)
  w.add_context_length(c.max_position_embeddings)
  w.add_embedding_length(c.hidden_size)
  w.add_feed_forward_length(c.intermediate_size)
  w.add_head_count(c.num_attention_heads)
  w.add_head_count_kv(c.num_key_value_heads)
  w.add_rope_freq_base(c.rope_parameters["rope_theta"])
  w.add_rope_dimension_count(c.head_dim)
  w.add_layer_norm_rms_eps(c.rms_norm_eps)
  w.add_vocab_size(c.vocab_size)
  for key, value in extra_kv:
    w.add_uint32(key, value)
  w.add_tokenizer_model("gpt2")
  w.add_tokenizer_pre("smollm")
  w.add_token_list(TOKENS)
  w.add_token_types([3, 3] + [1] * (len(TOKENS) - 2))
  w.add_token_merges(MERGES)
  w.add_bos_token_id(1)
  w.add_eos_token_id(0)
  w.add_pad_token_id(0)
  sd = {k: v.float().numpy() for k, v in torch_model.state_dict().items()}
  names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
           "post_attention_layernorm": "ffn_norm"}
  tensors = {"token_embd.weight": sd["model.embed_tokens.weight"],
             "output_norm.weight": sd["model.norm.weight"]}
  if not c.tie_word_embeddings:
    tensors["output.weight"] = sd["lm_head.weight"]
  for i in range(c.num_hidden_layers):
    for theirs, ours in names.items():
      t = sd[f"model.layers.{i}.{theirs}.weight"]
      if ours == "attn_q":
        t = _permute(t, c.num_attention_heads)
      elif ours == "attn_k":
        t = _permute(t, c.num_key_value_heads)
      tensors[f"blk.{i}.{ours}.weight"] = t
  tensors.update(extra_tensors or {})
  for name, t in tensors.items():
    w.add_tensor(name, np.ascontiguousarray(t))
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return str(path)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
  pytest.importorskip("gguf")
  path = tmp_path_factory.mktemp("tiny_gguf")
  torch_model = hf_utils.save_tiny(transformers.LlamaForCausalLM, tiny_config(), path / "hf")
  return write_gguf(path / "tiny.gguf", torch_model), torch_model


def test_gguf_logits_match_pytorch(tiny_gguf):
  from hpprompt.models.convert import gguf as gguf_io
  path, torch_model = tiny_gguf
  model, _ = gguf_io.load(path)
  assert model.config.tie_embeddings and model.config.rope_theta == 10_000.0
  for pad in ("right", "left"):
    ids, mask = hf_utils.random_batch(np.random.default_rng(4), VOCAB, 3, 9, pad)
    out = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask))
    hf_utils.assert_close_on_mask(out.logits, hf_utils.torch_logits(torch_model, ids, mask), mask)


def test_gguf_unpermute_inverts_llama_cpp():
  from hpprompt.models.convert import gguf as gguf_io
  w = np.random.default_rng(0).normal(size=(3 * 8, 5))
  np.testing.assert_array_equal(gguf_io.unpermute_qk(_permute(w, 3), 3), w)
  np.testing.assert_array_equal(gguf_io.unpermute_qk(_permute(w[:, 0], 3), 3), w[:, 0])


def test_gguf_tokenizer(tiny_gguf):
  from hpprompt.models.convert import gguf as gguf_io
  _, tok = gguf_io.load(tiny_gguf[0])
  ids = lambda *toks: [TOKENS.index(t) for t in toks]
  assert tok.encode("hello world") == ids("hello", "Ġ", "w", "o", "r", "l", "d")
  assert tok.encode("<|im_start|>he 42") == ids("<|im_start|>", "he", "Ġ", "4", "2")
  assert tok.decode(tok.encode("hello <|im_start|>x"), skip_special_tokens=True) == "hello x"
  assert tok.special_id("bos") == 1 and tok.special_id("eos") == 0 and tok.special_id("pad") == 0


def test_gguf_errors(tiny_gguf, tmp_path):
  from hpprompt.models.convert import gguf as gguf_io
  _, torch_model = tiny_gguf
  extra = write_gguf(tmp_path / "extra.gguf", torch_model,
                     extra_tensors={"rope_freqs.weight": np.ones(4, np.float32)})
  with pytest.raises(ConversionError, match="unexpected checkpoint key.*rope_freqs.weight"):
    gguf_io.load(extra)
  meta = write_gguf(tmp_path / "meta.gguf", torch_model, extra_kv=[("llama.expert_count", 8)])
  with pytest.raises(ConversionError, match="unsupported GGUF metadata llama.expert_count=8"):
    gguf_io.load(meta)
  meta = write_gguf(tmp_path / "meta2.gguf", torch_model, extra_kv=[("llama.new_thing", 1)])
  with pytest.raises(ConversionError, match="unknown GGUF metadata llama.new_thing=1"):
    gguf_io.load(meta)
  other = write_gguf(tmp_path / "other.gguf", torch_model, arch="qwen2")
  with pytest.raises(ConversionError, match="architecture 'qwen2' is not supported"):
    gguf_io.load(other)
  (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
  with pytest.raises(ConversionError, match="not a readable GGUF"):
    gguf_io.load(str(tmp_path / "junk.gguf"))
