"""GGUF (llama.cpp) checkpoints: dequantized tensors, an HF-like config, the tokenizer, Llama rules.

`read(path)` dequantizes every tensor to float32 numpy in torch layout ([out, in]) and decodes the
metadata. `load(path)` builds our `Llama` and `Tokenizer` from it. Strict like the safetensors path:
unknown `llama.*` metadata, unsupported tokenizers and unknown tensors raise `ConversionError`.

llama.cpp stores attn_q / attn_k permuted for interleaved (GPT-J style) rotary pairs; the rules undo
that permutation so the weights fit the rotate-half RoPE of Hugging Face and `layers.RoPE`.
"""
import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
import tokenizers
from flax import nnx
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers
from tokenizers import processors

from hpprompt.models import llama
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.convert.core import Rule
from hpprompt.models.convert.core import fill
from hpprompt.models.tokenizer import Tokenizer


def _gguf():
  try:
    import gguf  # noqa: PLC0415
    import gguf.quants  # noqa: F401, PLC0415
  except ImportError as e:
    raise ModuleNotFoundError("reading GGUF files needs the gguf package: pip install gguf") from e
  return gguf


@dataclasses.dataclass(frozen=True)
class GGUFCheckpoint:
  path: str
  metadata: dict[str, Any]        # key -> str / int / float / bool / list (no 'GGUF.*' header)
  tensors: dict[str, np.ndarray]  # GGUF name -> read-only float32 [out, in] (torch); q/k as stored


def read(path: str) -> GGUFCheckpoint:
  """Reads and dequantizes a GGUF file (SmolLM2-135M Q4_1: ~5 s open + ~3 s dequantize, 538 MB)."""
  gguf = _gguf()
  try:
    reader = gguf.GGUFReader(path)
  except (OSError, ValueError) as e:
    raise ConversionError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e}).") from e
  metadata = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
  tensors = {}
  for t in reader.tensors:
    w = gguf.quants.dequantize(t.data, t.tensor_type)
    w = np.array(w, dtype=np.float32).reshape([int(n) for n in reversed(t.shape)])
    w.flags.writeable = False    # may be shared through a cache
    tensors[t.name] = w
  return GGUFCheckpoint(path, metadata, tensors)


# llama.* metadata read into the config; anything else under llama.* raises.
_LLAMA_KEYS = {
    "context_length": "max_position_embeddings",
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "vocab_size": "vocab_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "rope.freq_base": "rope_theta",
    "attention.key_length": "head_dim",
}
# llama.* metadata accepted only with these values (not stored).
_LLAMA_CHECKED = {"rope.scaling.type": ("none",), "expert_count": (0,), "expert_used_count": (0,)}


def config_from_metadata(ckpt: GGUFCheckpoint) -> dict:
  """An HF-like `LlamaForCausalLM` config dict from `general.*` / `llama.*` metadata."""
  md = ckpt.metadata
  arch = md.get("general.architecture")
  if arch != "llama":
    raise ConversionError(f"{ckpt.path}: GGUF architecture {arch!r} is not supported "
                          "(only 'llama').")
  hf = {"model_type": "llama", "hidden_act": "silu"}
  rope_dims = value_length = None
  for key, value in md.items():
    if not key.startswith("llama."):
      continue
    name = key[len("llama."):]
    if name in _LLAMA_KEYS:
      hf[_LLAMA_KEYS[name]] = value
    elif name in _LLAMA_CHECKED:
      if value not in _LLAMA_CHECKED[name]:
        raise ConversionError(f"{ckpt.path}: unsupported GGUF metadata {key}={value!r}.")
    elif name == "rope.dimension_count":
      rope_dims = value
    elif name == "attention.value_length":
      value_length = value
    else:
      raise ConversionError(f"{ckpt.path}: unknown GGUF metadata {key}={value!r}; refusing to "
                            "guess how it changes the model.")
  for need in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
    if need not in hf:
      raise ConversionError(f"{ckpt.path}: GGUF metadata lacks the llama.* key for {need!r}.")
  head_dim = hf.setdefault("head_dim", hf["hidden_size"] // hf["num_attention_heads"])
  if rope_dims not in (None, head_dim) or value_length not in (None, head_dim):
    raise ConversionError(f"{ckpt.path}: rope.dimension_count={rope_dims} / value_length="
                          f"{value_length} differ from head_dim={head_dim} (unsupported).")
  tokens = md.get("tokenizer.ggml.tokens")
  hf.setdefault("vocab_size", len(tokens) if tokens else ckpt.tensors["token_embd.weight"].shape[0])
  hf["tie_word_embeddings"] = "output.weight" not in ckpt.tensors
  hf["attention_bias"] = "blk.0.attn_q.bias" in ckpt.tensors
  hf["mlp_bias"] = "blk.0.ffn_up.bias" in ckpt.tensors
  for ours, theirs in (("bos", "bos"), ("eos", "eos"), ("pad", "padding")):
    if f"tokenizer.ggml.{theirs}_token_id" in md:
      hf[f"{ours}_token_id"] = md[f"tokenizer.ggml.{theirs}_token_id"]
  return hf


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
  """llama.cpp interleaved q/k rows (or bias) -> Hugging Face rotate-half layout, per head."""
  return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


def llama_rules(cfg: llama.LlamaConfig) -> tuple[Rule, ...]:
  """GGUF tensor names -> our `Llama` parameters (q/k un-permuted, Linear weights transposed)."""
  heads = {"q": cfg.num_heads, "k": cfg.num_kv_heads}
  kernel = lambda n: (lambda w: unpermute_qk(w, n).T)
  bias = lambda n: (lambda b: unpermute_qk(b, n))
  attn = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output"}
  rules = [
      Rule("embed_tokens.embedding", "token_embd.weight"),
      Rule("norm.scale", "output_norm.weight"),
      Rule("lm_head", "output.weight"),
      Rule("layers.{i}.input_layernorm.scale", "blk.{i}.attn_norm.weight"),
      Rule("layers.{i}.post_attention_layernorm.scale", "blk.{i}.ffn_norm.weight"),
  ]
  for ours, theirs in attn.items():
    n = heads.get(ours)
    rules.append(Rule(f"layers.{{i}}.attn.{ours}.kernel", f"blk.{{i}}.{theirs}.weight",
                      kernel(n) if n else np.transpose))
    rules.append(Rule(f"layers.{{i}}.attn.{ours}.bias", f"blk.{{i}}.{theirs}.bias",
                      bias(n) if n else np.asarray))
  for n in ("gate", "up", "down"):
    rules.append(Rule(f"layers.{{i}}.mlp.{n}.kernel", f"blk.{{i}}.ffn_{n}.weight", np.transpose))
    rules.append(Rule(f"layers.{{i}}.mlp.{n}.bias", f"blk.{{i}}.ffn_{n}.bias"))
  return tuple(rules)


def _pre_tokenizer(pre: str):
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
  if pre == "smollm":   # llama.cpp's smollm regex = single digits, then the GPT-2 regex
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
  if pre in ("default", "gpt-2"):
    return byte_level
  raise ConversionError(f"GGUF tokenizer.ggml.pre={pre!r} is not supported; supported: 'smollm', "
                        "'gpt-2', 'default'.")


def tokenizer_from_metadata(metadata: dict) -> Tokenizer:
  """Byte-level BPE from tokenizer.ggml.{tokens,merges}; control tokens become special tokens."""
  kind = metadata.get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise ConversionError(f"GGUF tokenizer.ggml.model={kind!r} is not supported (only byte-level "
                          "BPE, 'gpt2').")
  tokens = metadata["tokenizer.ggml.tokens"]
  merges = [tuple(m.split(" ", 1)) for m in metadata.get("tokenizer.ggml.merges", [])]
  backend = tokenizers.Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
  backend.pre_tokenizer = _pre_tokenizer(metadata.get("tokenizer.ggml.pre", "default"))
  backend.decoder = decoders.ByteLevel()
  types = metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens)
  added = lambda kind, special: [tokenizers.AddedToken(t, special=special, normalized=False)
                                 for t, k in zip(tokens, types) if k == kind]
  backend.add_special_tokens(added(3, True))     # 3 = CONTROL, e.g. <|im_start|>
  backend.add_tokens(added(4, False))            # 4 = USER_DEFINED
  ids = {name: metadata.get(f"tokenizer.ggml.{key}_token_id") for name, key in
         (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown"))}
  special = {f"{name}_token": tokens[i] for name, i in ids.items() if i is not None}
  # llama.cpp's add_bos / add_eos flags, applied when encoding with add_special_tokens=True.
  wrap = {n: [(tokens[ids[n]], ids[n])] if metadata.get(f"tokenizer.ggml.add_{n}_token") and
          ids[n] is not None else [] for n in ("bos", "eos")}
  if wrap["bos"] or wrap["eos"]:
    backend.post_processor = processors.TemplateProcessing(
        single=" ".join([t for t, _ in wrap["bos"]] + ["$A"] + [t for t, _ in wrap["eos"]]),
        special_tokens=wrap["bos"] + wrap["eos"])
  return Tokenizer(backend, special)


def load(source: "str | GGUFCheckpoint", *, dtype=jnp.float32) -> tuple[llama.Llama, Tokenizer]:
  """(model, tokenizer) from a Llama-architecture GGUF file (or an already read checkpoint)."""
  ckpt = read(source) if isinstance(source, str) else source
  hf = config_from_metadata(ckpt)
  try:
    cfg = llama.LlamaConfig.from_hf_config(hf, dtype=dtype)
    tokenizer = tokenizer_from_metadata(ckpt.metadata)
  except ConversionError as e:
    raise ConversionError(f"{ckpt.path}: {e}") from e
  model = fill(lambda: llama.Llama(cfg, rngs=nnx.Rngs(0)), ckpt.tensors, llama_rules(cfg),
               dtype=dtype, source=ckpt.path)
  return model, tokenizer
