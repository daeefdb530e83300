"""Strict checkpoint conversion: a key map plus transforms fills an abstract NNX model.

A family declares `Rule`s: our parameter path (with `{i}` for a layer index), the checkpoint key,
and a transform (e.g. transpose a torch Linear weight). `fill` builds the model abstractly
(`nnx.eval_shape`), then sets every parameter from the checkpoint, checking shapes. It raises a
`ConversionError` naming the key when a parameter has no rule or no tensor, a shape differs, or a
checkpoint tensor is left unused (unless the family lists it as ignorable).
"""
import dataclasses
import re
from typing import Any, Callable, Iterable

import jax.numpy as jnp
import numpy as np
from flax import nnx

Transform = Callable[[np.ndarray], np.ndarray]


class ConversionError(ValueError):
  """A checkpoint does not match the model it is converted into."""


def identity(x: np.ndarray) -> np.ndarray:
  return x


def transpose(x: np.ndarray) -> np.ndarray:
  """torch nn.Linear weight [out, in] -> our kernel [in, out]."""
  return x.T


@dataclasses.dataclass(frozen=True)
class Rule:
  ours: str                        # e.g. "layers.{i}.attn.q.kernel"
  theirs: str                      # e.g. "model.layers.{i}.self_attn.q_proj.weight"
  transform: Transform = identity

  def match(self, path: str) -> str | None:
    pattern = "^" + re.escape(self.ours).replace(r"\{i\}", r"(\d+)") + "$"
    m = re.match(pattern, path)
    if m is None:
      return None
    return self.theirs.replace("{i}", m.group(1)) if m.groups() else self.theirs


@dataclasses.dataclass(frozen=True)
class Family:
  """How `load_pretrained` builds and converts one Hugging Face `model_type`."""
  config_from_hf: Callable[..., Any]          # (hf_config dict, dtype=) -> frozen config
  module: Callable[..., nnx.Module]           # (config, rngs=) -> model
  rules: tuple[Rule, ...]
  ignored_keys: tuple[str, ...] = ()          # regexes of checkpoint keys that may stay unused
  normalize_keys: Callable[[dict], dict] = lambda tensors: tensors


def _path(keys: tuple) -> str:
  return ".".join(str(k) for k in keys)


def fill(build: Callable[[], nnx.Module], tensors: dict[str, np.ndarray], rules: Iterable[Rule], *,
         ignore: Iterable[str] = (), dtype=jnp.float32, source: str = "checkpoint") -> nnx.Module:
  """Builds the model abstractly and fills every parameter from `tensors` through `rules`.

  Args:
    build: () -> model (called under nnx.eval_shape: no random init is computed).
    tensors: checkpoint name -> array.
    rules: key map; the first rule matching a parameter path wins.
    ignore: regexes of checkpoint keys that may stay unused (tied heads, buffers).
    dtype: parameter dtype.
    source: a file or model name for error messages.
  """
  rules = list(rules)
  abstract = nnx.eval_shape(build)
  graphdef, state = nnx.split(abstract)
  flat = dict(nnx.to_flat_state(state))
  used: set[str] = set()
  values = {}
  for keys, var in flat.items():
    path = _path(keys)
    theirs = next((t for t in (r.match(path) for r in rules) if t is not None), None)
    if theirs is None:
      raise ConversionError(f"{source}: no conversion rule for parameter {path!r}.")
    if theirs not in tensors:
      raise ConversionError(f"{source}: missing key {theirs!r} (needed for {path!r}).")
    rule = next(r for r in rules if r.match(path) is not None)
    value = np.asarray(rule.transform(np.asarray(tensors[theirs])))
    expected = tuple(var.shape)
    if value.shape != expected:
      raise ConversionError(f"{source}: shape mismatch for {theirs!r} -> {path!r}: checkpoint gives "
                            f"{value.shape}, model expects {expected}.")
    used.add(theirs)
    values[keys] = var.replace(jnp.asarray(value, dtype=dtype if var.dtype != jnp.int32 else None))
  ignored = [re.compile(p) for p in ignore]
  unused = sorted(k for k in tensors if k not in used and not any(p.fullmatch(k) for p in ignored))
  if unused:
    shown = ", ".join(repr(k) for k in unused[:5]) + (" ..." if len(unused) > 5 else "")
    raise ConversionError(f"{source}: {len(unused)} unexpected checkpoint key(s): {shown}.")
  return nnx.merge(graphdef, nnx.from_flat_state(values))


# Generic Hugging Face `PretrainedConfig` keys that never change a forward pass.
GENERIC_CONFIG_KEYS = frozenset({
    "_name_or_path", "architectures", "model_type", "transformers_version", "dtype", "torch_dtype",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "initializer_range", "initializer_factor", "use_cache", "output_attentions",
    "output_hidden_states", "return_dict", "id2label", "label2id", "problem_type",
    "task_specific_params", "prefix", "gradient_checkpointing", "max_length", "min_length",
    "do_sample", "num_beams", "temperature", "top_k", "top_p", "repetition_penalty",
    "tokenizer_class", "finetuning_task", "is_decoder", "is_encoder_decoder", "add_cross_attention",
    "tie_encoder_decoder", "chunk_size_feed_forward", "pruned_heads", "torchscript",
    "classifier_dropout", "attention_dropout", "dropout", "hidden_dropout_prob",
    "attention_probs_dropout_prob", "attn_pdrop", "embd_pdrop", "resid_pdrop",
    "activation_dropout", "layerdrop", "cross_attention_hidden_size", "_attn_implementation",
    "_attn_implementation_autoset", "quantization_config",
    # generation settings that transformers 4.x wrote into every config
    "use_bfloat16", "typical_p", "num_beam_groups", "bad_words_ids", "forced_bos_token_id",
    "forced_eos_token_id", "return_dict_in_generate", "tf_legacy_loss", "diversity_penalty",
    "early_stopping", "length_penalty", "no_repeat_ngram_size", "num_return_sequences",
    "output_scores", "remove_invalid_values", "encoder_no_repeat_ngram_size",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    "cross_attention_hidden_size", "sep_token_id",
})


def check_config(hf_config: dict, supported: dict, *, family: str, ignored=frozenset()) -> None:
  """Raises `ConversionError` for config options we would convert wrongly.

  Every key must be generic (`GENERIC_CONFIG_KEYS`), listed in `ignored` (harmless for this family),
  or listed in `supported`, whose value is an allowed value, a tuple of allowed values, or a predicate.
  Keys in `supported` whose value is a dict or predicate are read by the family's config itself.
  """
  for key, value in hf_config.items():
    if key in GENERIC_CONFIG_KEYS or key in ignored:
      continue
    if key not in supported:
      raise ConversionError(f"{family}: unknown config option {key}={value!r}; refusing to guess "
                            "how it changes the model.")
    allowed = supported[key]
    if allowed is None:
      continue   # read by the family config
    ok = allowed(value) if callable(allowed) else (
        value in allowed if isinstance(allowed, tuple) else value == allowed)
    if not ok:
      raise ConversionError(f"{family}: unsupported config option {key}={value!r}.")


def add_missing_prefix(prefix: str, keep: tuple[str, ...] = ("lm_head",)):
  """A `normalize_keys` for checkpoints saved from the bare model class (GPT2Model, OPTModel,
  LlamaModel): their keys lack the LM class's prefix (e.g. 'transformer.'), which is added."""
  def normalize(tensors: dict) -> dict:
    if any(k.startswith(prefix) for k in tensors):
      return tensors
    return {(k if k.startswith(keep) else prefix + k): v for k, v in tensors.items()}
  return normalize
