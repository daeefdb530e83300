"""BERT and RoBERTa encoders (bert-base-uncased, roberta-base, roberta-large) as NNX models.

"BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", Devlin et al.
2019; "RoBERTa: A Robustly Optimized BERT Pretraining Approach", Liu et al. 2019. Post-LayerNorm
blocks (residual, then LayerNorm), learned absolute positions, token-type embeddings, bidirectional
attention over the real (non-pad) tokens. Two heads, chosen by config.json's `architectures`:
  masked LM   (Bert/RobertaForMaskedLM): dense -> act -> LayerNorm -> tied decoder + bias;
  classifier  (Bert/RobertaForSequenceClassification): dense -> tanh on the first token -> linear.
RoBERTa's positions start at padding_idx + 1 (fairseq), BERT's at 0. `positions` passed to a model
are always the 0-based count of real tokens before each token; the RoBERTa offset is added here.
"""
import dataclasses
import functools
import re
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt.models import layers
from hpprompt.models.base import MaskedLM
from hpprompt.models.cache import make_mask
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.convert.core import Family
from hpprompt.models.convert.core import Rule
from hpprompt.models.convert.core import check_config
from hpprompt.models.convert.core import transpose

Array = jax.Array

# Hugging Face architecture -> our head, per model_type.
ARCHITECTURES = {
    "bert": {"BertForMaskedLM": "mlm", "BertForPreTraining": "mlm",
             "BertForSequenceClassification": "classifier"},
    "roberta": {"RobertaForMaskedLM": "mlm", "RobertaForSequenceClassification": "classifier"},
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  vocab_size: int
  max_positions: int
  dim: int
  num_layers: int
  num_heads: int
  mlp_dim: int
  type_vocab_size: int = 2
  eps: float = 1e-12
  activation: str = "gelu"
  flavor: str = "bert"            # "bert" or "roberta": checkpoint names, position offset, head act
  position_offset: int = 0        # RoBERTa: padding_idx + 1
  head: str = "mlm"               # "mlm" or "classifier"
  num_labels: int = 2             # classifier only
  dtype: Any = jnp.float32

  @property
  def head_activation(self) -> str:
    # RobertaLMHead applies exact gelu whatever hidden_act says; BERT's transform uses hidden_act.
    return "gelu" if self.flavor == "roberta" else self.activation

  @classmethod
  def from_hf_config(cls, hf: dict, dtype=jnp.float32, *, flavor: str = "bert") -> "BertConfig":
    check_config(hf, {
        "vocab_size": None, "hidden_size": None, "num_hidden_layers": None,
        "num_attention_heads": None, "intermediate_size": None, "max_position_embeddings": None,
        "type_vocab_size": None, "layer_norm_eps": None, "num_labels": None,
        "hidden_act": tuple(layers.ACTIVATIONS),
        "position_embedding_type": "absolute",
        "tie_word_embeddings": (True, False),   # checked below for the MLM head
    }, family=flavor, ignored={
        # Metadata of old Google/multilingual BERT configs; no effect on the forward pass.
        "directionality", "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
        "pooler_size_per_head", "pooler_type", "output_past"})
    # check_config skips these generic keys; an encoder must not be a decoder.
    for key in ("is_decoder", "add_cross_attention"):
      if hf.get(key):
        raise ConversionError(f"{flavor}: unsupported config option {key}={hf[key]!r} "
                              "(only bidirectional encoders are supported).")
    archs = hf.get("architectures") or []
    supported = ARCHITECTURES[flavor]
    if len(archs) != 1 or archs[0] not in supported:
      raise ConversionError(f"{flavor}: unsupported architectures {archs!r}; supported: "
                            f"{sorted(supported)}.")
    head = supported[archs[0]]
    if head == "mlm" and hf.get("tie_word_embeddings", True) is False:
      raise ConversionError(f"{flavor}: the MLM decoder must be tied to the word embeddings "
                            "(tie_word_embeddings=False is unsupported).")
    offset = 0
    if flavor == "roberta":
      pad = hf.get("pad_token_id", 1)
      if pad is None:
        raise ConversionError("roberta: pad_token_id is needed for the position offset.")
      offset = pad + 1
    num_labels = len(hf["id2label"]) if "id2label" in hf else hf.get("num_labels", 2)
    return cls(vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
               dim=hf["hidden_size"], num_layers=hf["num_hidden_layers"],
               num_heads=hf["num_attention_heads"], mlp_dim=hf["intermediate_size"],
               type_vocab_size=hf.get("type_vocab_size", 2),
               eps=hf.get("layer_norm_eps", 1e-12), activation=hf.get("hidden_act", "gelu"),
               flavor=flavor, position_offset=offset, head=head, num_labels=num_labels,
               dtype=dtype)


class BertBlock(nnx.Module):
  """Post-LN: x = LN(x + attn(x)); x = LN(x + mlp(x))."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.attn = layers.Attention(cfg.dim, cfg.num_heads, param_dtype=cfg.dtype, rngs=rngs)
    self.attn_norm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)
    self.mlp = layers.MLP(cfg.dim, cfg.mlp_dim, cfg.activation, param_dtype=cfg.dtype, rngs=rngs)
    self.mlp_norm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)

  def __call__(self, x: Array, mask: Array) -> Array:
    x = self.attn_norm(x + self.attn(x, mask)[0])
    return self.mlp_norm(x + self.mlp(x))


class BertEncoder(nnx.Module):
  """Embeddings (word + position + token type, LayerNorm) and the Transformer blocks."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    embed = lambda n: nnx.Embed(n, cfg.dim, param_dtype=cfg.dtype, rngs=rngs)
    self.word_embeddings = embed(cfg.vocab_size)
    self.position_embeddings = embed(cfg.max_positions)
    self.token_type_embeddings = embed(cfg.type_vocab_size)
    self.embed_norm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)
    self.layers = nnx.List([BertBlock(cfg, rngs=rngs) for _ in range(cfg.num_layers)])

  def embed(self, input_ids: Array) -> Array:
    return self.word_embeddings(input_ids)

  def __call__(self, x: Array, mask: Array, positions: Array,
               token_type_ids: Array | None = None) -> Array:
    """x: word embeddings [B, T, D]; mask [B, 1, 1, T]; positions [B, T] (0-based) -> [B, T, D]."""
    cfg = self.config
    if x.shape[1] + cfg.position_offset > cfg.max_positions:
      raise ValueError(f"sequence length {x.shape[1]} exceeds the "
                       f"{cfg.max_positions - cfg.position_offset} positions of this model.")
    x = x + self.position_embeddings(positions + cfg.position_offset)
    if token_type_ids is None:
      x = x + self.token_type_embeddings.embedding[0].astype(x.dtype)
    else:
      x = x + self.token_type_embeddings(token_type_ids)
    x = self.embed_norm(x)
    for block in self.layers:
      x = block(x, mask)
    return x


class MLMHead(nnx.Module):
  """dense -> act -> LayerNorm -> @ word_embeddings.T + bias (cls.predictions / RoBERTa lm_head)."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.act = layers.activation(cfg.head_activation)
    self.dense = nnx.Linear(cfg.dim, cfg.dim, param_dtype=cfg.dtype, rngs=rngs)
    self.norm = layers.layer_norm(cfg.dim, cfg.eps, param_dtype=cfg.dtype, rngs=rngs)
    self.bias = nnx.Param(jnp.zeros((cfg.vocab_size,), cfg.dtype))

  def __call__(self, hidden: Array, embedding: Array, ids: Array | None = None) -> Array:
    """embedding: [V, D], or its rows `ids` only (then the bias is taken at `ids` too)."""
    h = self.norm(self.act(self.dense(hidden)))
    bias = self.bias[...] if ids is None else self.bias[...][ids]
    return h @ embedding.T.astype(h.dtype) + bias.astype(h.dtype)


class BertForMaskedLM(MaskedLM):
  """Encoder + MLM head: `hidden` is the last block's output, `logits` the MLM logits [B, T, V]."""

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    self.encoder = BertEncoder(cfg, rngs=rngs)
    self.head = MLMHead(cfg, rngs=rngs)

  def embed(self, input_ids: Array) -> Array:
    return self.encoder.embed(input_ids)

  def output_embedding(self) -> Array:
    return self.encoder.word_embeddings.embedding[...]

  def backbone(self, x, mask, positions, token_type_ids):
    return self.encoder(x, mask, positions, token_type_ids)

  def unembed(self, hidden: Array) -> Array:
    """MLM logits for hidden [..., D]; apply it to `logits_at(hidden, ...)` to skip other tokens."""
    return self.head(hidden, self.output_embedding())

  def unembed_ids(self, hidden: Array, ids: Array) -> Array:
    """MLM logits of the token `ids` only ([..., D] -> [..., len(ids)]), e.g. verbalizers."""
    return self.head(hidden, self.output_embedding()[ids], ids)


class BertClassifier(nnx.Module):
  """Encoder + sequence-classification head on the first real token ([CLS] / <s>).

  `pooler` is BERT's pooler.dense (RoBERTa's classifier.dense), followed by tanh; `classifier` is
  BERT's classifier (RoBERTa's classifier.out_proj). Hugging Face pools slot 0; we pool the first
  real token, which is slot 0 for right-padded or unpadded rows and stays correct for left padding.
  """

  def __init__(self, cfg: BertConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    self.encoder = BertEncoder(cfg, rngs=rngs)
    linear = lambda i, o: nnx.Linear(i, o, param_dtype=cfg.dtype, rngs=rngs)
    self.pooler = linear(cfg.dim, cfg.dim)
    self.classifier = linear(cfg.dim, cfg.num_labels)

  def embed(self, input_ids: Array) -> Array:
    return self.encoder.embed(input_ids)

  def __call__(self, input_ids: Array | None = None, *, inputs_embeds: Array | None = None,
               attention_mask: Array | None = None, token_type_ids: Array | None = None,
               positions: Array | None = None) -> Array:
    """Class logits [B, num_labels] for ids or embeddings [B, T] (padding on either side)."""
    if (input_ids is None) == (inputs_embeds is None):
      raise ValueError("Pass exactly one of `input_ids` and `inputs_embeds`.")
    x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
    if attention_mask is None:
      attention_mask = jnp.ones(x.shape[:2], bool)
    mask, pos = make_mask(attention_mask, causal=False)
    hidden = self.encoder(x, mask, pos if positions is None else positions, token_type_ids)
    first = jnp.argmax(attention_mask.astype(bool), axis=1)                   # [B]
    pooled = jnp.tanh(self.pooler(logits_at(hidden, first)))                  # [B, D]
    return self.classifier(pooled)


def logits_at(x: Array, positions: Array) -> Array:
  """x [B, T, ...] at positions [B] -> [B, ...], or at [B, K] -> [B, K, ...].

  E.g. the MLM logits at each row's <mask>; works on hidden states too (then `model.unembed`).
  """
  idx = positions if positions.ndim == 2 else positions[:, None]
  idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
  out = jnp.take_along_axis(x, idx, axis=1)
  return out if positions.ndim == 2 else out[:, 0]


def first_position(input_ids: Array, token_id: int) -> Array:
  """Index [B] of the first `token_id` (e.g. <mask>) in each row of ids [B, T] (0 if absent)."""
  return jnp.argmax(input_ids == token_id, axis=1)


def build(cfg: BertConfig, *, rngs: nnx.Rngs) -> nnx.Module:
  return (BertForMaskedLM if cfg.head == "mlm" else BertClassifier)(cfg, rngs=rngs)


def _rules(prefix: str, *, mlm_dense: str, mlm_norm: str, mlm_bias: str, pooler: str,
           classifier: str) -> tuple[Rule, ...]:
  """Checkpoint names of BERT (prefix 'bert') or RoBERTa ('roberta'); Linear weights transposed."""
  p, layer = f"{prefix}.embeddings", f"{prefix}.encoder.layer.{{i}}"

  def linear(ours, theirs):
    return (Rule(f"{ours}.kernel", f"{theirs}.weight", transpose),
            Rule(f"{ours}.bias", f"{theirs}.bias"))

  def norm(ours, theirs):
    return (Rule(f"{ours}.scale", f"{theirs}.weight"), Rule(f"{ours}.bias", f"{theirs}.bias"))

  return (
      Rule("encoder.word_embeddings.embedding", f"{p}.word_embeddings.weight"),
      Rule("encoder.position_embeddings.embedding", f"{p}.position_embeddings.weight"),
      Rule("encoder.token_type_embeddings.embedding", f"{p}.token_type_embeddings.weight"),
      *norm("encoder.embed_norm", f"{p}.LayerNorm"),
      *linear("encoder.layers.{i}.attn.q", f"{layer}.attention.self.query"),
      *linear("encoder.layers.{i}.attn.k", f"{layer}.attention.self.key"),
      *linear("encoder.layers.{i}.attn.v", f"{layer}.attention.self.value"),
      *linear("encoder.layers.{i}.attn.o", f"{layer}.attention.output.dense"),
      *norm("encoder.layers.{i}.attn_norm", f"{layer}.attention.output.LayerNorm"),
      *linear("encoder.layers.{i}.mlp.up", f"{layer}.intermediate.dense"),
      *linear("encoder.layers.{i}.mlp.down", f"{layer}.output.dense"),
      *norm("encoder.layers.{i}.mlp_norm", f"{layer}.output.LayerNorm"),
      *linear("head.dense", mlm_dense),
      *norm("head.norm", mlm_norm),
      Rule("head.bias", mlm_bias),
      *linear("pooler", pooler),
      *linear("classifier", classifier),
  )


CHECKPOINT_RULES = {
    "bert": _rules("bert", mlm_dense="cls.predictions.transform.dense",
                   mlm_norm="cls.predictions.transform.LayerNorm", mlm_bias="cls.predictions.bias",
                   pooler="bert.pooler.dense", classifier="classifier"),
    "roberta": _rules("roberta", mlm_dense="lm_head.dense", mlm_norm="lm_head.layer_norm",
                      mlm_bias="lm_head.bias", pooler="classifier.dense",
                      classifier="classifier.out_proj"),
}
# Tied decoders (and their bias copies), unused poolers of MLM checkpoints, BERT's next-sentence
# head, position/token-type id buffers of old checkpoints.
IGNORED_KEYS = (
    r"cls\.predictions\.decoder\.(weight|bias)", r"lm_head\.decoder\.(weight|bias)",
    r"(bert|roberta)\.pooler\.dense\.(weight|bias)", r"cls\.seq_relationship\.(weight|bias)",
    r"(bert|roberta)\.embeddings\.(position_ids|token_type_ids)",
)


def normalize_keys(tensors: dict) -> dict:
  """Old (TF-converted) BERT checkpoints call LayerNorm parameters gamma/beta: rename them."""
  rename = lambda k: re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight",
                            re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", k))
  out = {rename(k): v for k, v in tensors.items()}
  if len(out) != len(tensors):
    raise ConversionError("checkpoint has both gamma/beta and weight/bias names for a LayerNorm.")
  return out


FAMILIES = {
    flavor: Family(functools.partial(BertConfig.from_hf_config, flavor=flavor), build,
                   CHECKPOINT_RULES[flavor], IGNORED_KEYS, normalize_keys)
    for flavor in ("bert", "roberta")
}
