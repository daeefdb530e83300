"""BERT / RoBERTa: MLM and classifier parity with tiny random transformers models, heads, errors."""
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file
from safetensors.numpy import save_file

from hpprompt.models import bert
from hpprompt.models import hub
from hpprompt.models.convert.core import ConversionError
from tests.models import hf_utils
from tests.models.hf_utils import torch
from tests.models.hf_utils import transformers

VOCAB = 100
MASK_ID = VOCAB - 1
PAD = {"bert": 0, "roberta": 1}
SIZES = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=64)
SPECS = {   # name -> (flavor, transformers class, extra config)
    "bert_mlm": ("bert", "BertForMaskedLM", {}),
    "roberta_mlm": ("roberta", "RobertaForMaskedLM", {}),
    "bert_cls": ("bert", "BertForSequenceClassification", {"num_labels": 3}),
    "roberta_cls": ("roberta", "RobertaForSequenceClassification", {"num_labels": 3}),
}


def _config(flavor: str, extra: dict):
  if flavor == "bert":
    return transformers.BertConfig(**SIZES, pad_token_id=0, **extra)
  return transformers.RobertaConfig(**SIZES, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                    type_vocab_size=1, layer_norm_eps=1e-5, **extra)


def _save_perturbed(model_cls, config, path, seed: int = 0):
  """Like hf_utils.save_tiny, but adds noise to every parameter: HF initialises biases to 0 and
  LayerNorms to (1, 0), which would hide a swapped or missing bias in the key map."""
  torch.manual_seed(seed)
  model = model_cls(config).eval()
  with torch.no_grad():
    for p in model.parameters():    # tied decoder weights are visited once
      p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(str(path))
  return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """name -> (flavor, path, torch model, our model)."""
  out = {}
  for name, (flavor, cls_name, extra) in SPECS.items():
    path = tmp_path_factory.mktemp(name)
    torch_model = _save_perturbed(getattr(transformers, cls_name), _config(flavor, extra), path)
    out[name] = flavor, path, torch_model, hub.load_model(str(path))
  return out


def _batch(seed: int, flavor: str, batch: int = 3, length: int = 11):
  """Right-padded (ids, mask); real tokens avoid the pad and mask ids."""
  ids, mask = hf_utils.random_batch(np.random.default_rng(seed), VOCAB, batch, length, "right")
  ids = np.where(np.isin(ids, [PAD[flavor], MASK_ID]), 3, ids).astype(np.int32)
  return ids, mask


def _torch_out(torch_model, flavor, ids, mask, token_type_ids=None):
  """Torch logits with pad ids at padded slots, positions derived by transformers itself."""
  ids = np.where(mask, ids, PAD[flavor])
  kwargs = {} if token_type_ids is None else {
      "token_type_ids": torch.tensor(token_type_ids, dtype=torch.long)}
  with torch.no_grad():
    out = torch_model(input_ids=torch.tensor(ids, dtype=torch.long),
                      attention_mask=torch.tensor(mask, dtype=torch.long), **kwargs)
  return out.logits.float().numpy()


def _left_pad(ids, mask):
  """The same rows moved to the right end (left padding)."""
  shift = (~mask).sum(1)
  return (np.stack([np.roll(r, s) for r, s in zip(ids, shift)]),
          np.stack([np.roll(r, s) for r, s in zip(mask, shift)]))


@pytest.mark.parametrize("name", ["bert_mlm", "roberta_mlm"])
def test_mlm_logits_match_pytorch(tiny, name):
  flavor, _, torch_model, model = tiny[name]
  ids, mask = _batch(0, flavor)
  out = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert isinstance(model, bert.BertForMaskedLM)
  assert out.hidden.shape == (3, 11, 32) and out.logits.shape == (3, 11, VOCAB)
  hf_utils.assert_close_on_mask(out.logits, _torch_out(torch_model, flavor, ids, mask), mask)


def test_bert_token_type_ids_match_pytorch(tiny):
  flavor, _, torch_model, model = tiny["bert_mlm"]
  ids, mask = _batch(1, flavor)
  types = (np.arange(11)[None] >= np.array([[3], [5], [2]])).astype(np.int32)
  out = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask),
              token_type_ids=jnp.asarray(types))
  hf_utils.assert_close_on_mask(out.logits, _torch_out(torch_model, flavor, ids, mask, types), mask)


@pytest.mark.parametrize("name", ["bert_cls", "roberta_cls"])
def test_classifier_logits_match_pytorch(tiny, name):
  flavor, _, torch_model, model = tiny[name]
  ids, mask = _batch(2, flavor)
  logits = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert isinstance(model, bert.BertClassifier) and logits.shape == (3, 3)
  np.testing.assert_allclose(logits, _torch_out(torch_model, flavor, ids, mask), atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["roberta_mlm", "bert_cls"])
def test_left_padding_equals_right_padding(tiny, name):
  flavor, _, _, model = tiny[name]
  ids, mask = _batch(3, flavor)
  left_ids, left_mask = _left_pad(ids, mask)
  right = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  left = model(jnp.asarray(left_ids), attention_mask=jnp.asarray(left_mask))
  if name.endswith("cls"):
    np.testing.assert_allclose(left, right, atol=1e-5)
  else:
    np.testing.assert_allclose(np.asarray(left.logits)[left_mask], np.asarray(right.logits)[mask],
                               atol=1e-5)


def test_logits_at_mask_positions(tiny):
  flavor, _, torch_model, model = tiny["roberta_mlm"]
  ids, mask = _batch(4, flavor)
  where = np.array([2, 7, 4])                      # one <mask> per row, inside the real tokens
  ids[np.arange(3), where] = MASK_ID
  pos = bert.first_position(jnp.asarray(ids), MASK_ID)
  np.testing.assert_array_equal(pos, where)
  out = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  at = bert.logits_at(out.logits, pos)
  assert at.shape == (3, VOCAB)
  want = _torch_out(torch_model, flavor, ids, mask)[np.arange(3), where]
  np.testing.assert_allclose(at, want, atol=1e-4, rtol=0)
  # Cheap path: the head on the gathered hidden states only.
  np.testing.assert_allclose(model.unembed(bert.logits_at(out.hidden, pos)), at, atol=1e-5)
  verbalizers = jnp.array([7, 42, 5])
  np.testing.assert_allclose(model.unembed_ids(bert.logits_at(out.hidden, pos), verbalizers),
                             at[:, verbalizers], atol=1e-5)
  two = bert.logits_at(out.logits, jnp.stack([pos, pos - 1], axis=1))
  assert two.shape == (3, 2, VOCAB)
  np.testing.assert_allclose(two[:, 0], at)
  np.testing.assert_allclose(two[:, 1], np.asarray(out.logits)[np.arange(3), where - 1])


@pytest.mark.parametrize("name", ["bert_mlm", "roberta_mlm", "roberta_cls"])
def test_inputs_embeds_equal_ids(tiny, name):
  flavor, _, _, model = tiny[name]
  ids, mask = (jnp.asarray(a) for a in _batch(5, flavor))
  a = model(ids, attention_mask=mask)
  b = model(inputs_embeds=model.embed(ids), attention_mask=mask)
  if name.endswith("mlm"):
    a, b = a.logits, b.logits
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_jit_equals_eager(tiny):
  flavor, _, _, model = tiny["bert_mlm"]
  ids, mask = (jnp.asarray(a) for a in _batch(6, flavor))
  f = nnx.jit(lambda m, i, k: m(i, attention_mask=k).logits)
  np.testing.assert_allclose(f(model, ids, mask), model(ids, attention_mask=mask).logits, atol=1e-5)


def test_too_long_raises(tiny):
  _, _, _, model = tiny["roberta_mlm"]       # 64 positions, offset 2: at most 62 tokens
  hidden = lambda ids: model(ids, compute_logits=False).hidden
  assert jax.eval_shape(hidden, jnp.zeros((1, 62), jnp.int32)).shape == (1, 62, 32)
  with pytest.raises(ValueError, match="exceeds the 62 positions"):
    jax.eval_shape(hidden, jnp.zeros((1, 63), jnp.int32))


@pytest.mark.parametrize("name", ["roberta_mlm", "bert_cls"])
def test_bfloat16_runs(tiny, name):
  flavor, path, _, model = tiny[name]
  model16 = hub.load_model(str(path), dtype=jnp.bfloat16)
  ids, mask = (jnp.asarray(a) for a in _batch(7, flavor))
  # Jitted: one compile beats eager dispatch of every bfloat16 op.
  f = nnx.jit(lambda m, i, k: m(i, attention_mask=k))
  a, b = model(ids, attention_mask=mask), f(model16, ids, mask)
  if name.endswith("mlm"):
    a, b = a.logits, b.logits
  assert b.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(b, np.float32), a, atol=0.05)


def test_old_checkpoint_names(tiny, tmp_path):
  """gamma/beta LayerNorm names, a stored tied decoder, pooler, NSP head and buffers all load."""
  _, path, _, model = tiny["bert_mlm"]
  tensors = load_file(str(path / "model.safetensors"))
  rename = lambda k: k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias",
                                                                              "LayerNorm.beta")
  old = {rename(k): v for k, v in tensors.items()}
  assert sum(k.endswith("gamma") for k in old) == 6
  rng = np.random.default_rng(0)
  old.update({
      "cls.predictions.decoder.weight": tensors["bert.embeddings.word_embeddings.weight"],
      "cls.predictions.decoder.bias": tensors["cls.predictions.bias"],
      "bert.pooler.dense.weight": rng.normal(size=(32, 32)).astype(np.float32),
      "bert.pooler.dense.bias": np.zeros(32, np.float32),
      "cls.seq_relationship.weight": np.zeros((2, 32), np.float32),
      "cls.seq_relationship.bias": np.zeros(2, np.float32),
      "bert.embeddings.position_ids": np.arange(64)[None],
  })
  shutil.copy(path / "config.json", tmp_path / "config.json")
  save_file(old, str(tmp_path / "model.safetensors"))
  loaded = hub.load_model(str(tmp_path))
  ids, mask = (jnp.asarray(a) for a in _batch(8, "bert"))
  np.testing.assert_array_equal(loaded(ids, attention_mask=mask).logits,
                                model(ids, attention_mask=mask).logits)


def _write(directory, cfg: dict, tensors_from=None, tensors=None):
  directory.mkdir(exist_ok=True)
  (directory / "config.json").write_text(json.dumps(cfg))
  if tensors is not None:
    save_file(tensors, str(directory / "model.safetensors"))
  elif tensors_from is not None:
    shutil.copy(tensors_from / "model.safetensors", directory / "model.safetensors")
  return str(directory)


def test_loader_errors(tiny, tmp_path):
  _, path, _, _ = tiny["bert_mlm"]
  cfg = json.loads((path / "config.json").read_text())
  bad = tmp_path / "bad"
  cases = [
      ({"position_embedding_type": "relative_key"}, "unsupported config option position_embedding"),
      ({"architectures": ["BertForTokenClassification"]}, "unsupported architectures"),
      ({"architectures": ["RobertaForMaskedLM"]}, "unsupported architectures"),
      ({"architectures": None}, "unsupported architectures"),
      ({"is_decoder": True}, "is_decoder=True"),
      ({"add_cross_attention": True}, "add_cross_attention=True"),
      ({"tie_word_embeddings": False}, "must be tied"),
      ({"rotary_dim": 8}, "unknown config option rotary_dim"),
      ({"hidden_size": 48}, "shape mismatch"),
  ]
  for change, message in cases:
    _write(bad, {**cfg, **change}, tensors_from=path)
    with pytest.raises(ConversionError, match=message):
      hub.load_model(str(bad))
  # A classifier checkpoint without its pooler; an unknown extra tensor.
  _, cls_path, _, _ = tiny["bert_cls"]
  cls_cfg = json.loads((cls_path / "config.json").read_text())
  tensors = load_file(str(cls_path / "model.safetensors"))
  no_pooler = {k: v for k, v in tensors.items() if "pooler" not in k}
  _write(bad, cls_cfg, tensors=no_pooler)
  with pytest.raises(ConversionError, match=r"missing key 'bert\.pooler\.dense\.(weight|bias)'"):
    hub.load_model(str(bad))
  _write(bad, cls_cfg, tensors={**tensors, "bert.encoder.layer.0.extra": np.zeros(2, np.float32)})
  with pytest.raises(ConversionError, match="unexpected checkpoint key.*layer.0.extra"):
    hub.load_model(str(bad))


# config.json of the hub checkpoints this family targets (verbatim key sets).
HUB_CONFIGS = {
    "bert-base-uncased": {
        "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
        "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
        "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522},
    "roberta-base": {
        "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0, "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
        "layer_norm_eps": 1e-05, "max_position_embeddings": 514, "model_type": "roberta",
        "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
        "type_vocab_size": 1, "vocab_size": 50265},
}


def test_hub_configs():
  b = bert.FAMILIES["bert"].config_from_hf(HUB_CONFIGS["bert-base-uncased"])
  assert (b.dim, b.num_layers, b.num_heads, b.mlp_dim, b.max_positions, b.type_vocab_size,
          b.position_offset, b.head, b.eps) == (768, 12, 12, 3072, 512, 2, 0, "mlm", 1e-12)
  large = {**HUB_CONFIGS["roberta-base"], "hidden_size": 1024, "intermediate_size": 4096,
           "num_attention_heads": 16, "num_hidden_layers": 24}
  r = bert.FAMILIES["roberta"].config_from_hf(large)
  assert (r.dim, r.num_layers, r.num_heads, r.vocab_size, r.position_offset, r.head,
          r.head_activation) == (1024, 24, 16, 50265, 2, "mlm", "gelu")
  cls_cfg = {**HUB_CONFIGS["roberta-base"], "architectures": ["RobertaForSequenceClassification"],
             "id2label": {"0": "NEGATIVE", "1": "NEUTRAL", "2": "POSITIVE"}}
  c = bert.FAMILIES["roberta"].config_from_hf(cls_cfg)
  assert (c.head, c.num_labels) == ("classifier", 3)
  shapes = nnx.eval_shape(lambda: bert.build(b, rngs=nnx.Rngs(0)))
  n = sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(shapes, nnx.Param)))
  assert n == 109_514_298   # BertForMaskedLM(bert-base-uncased) without pooler and NSP head
