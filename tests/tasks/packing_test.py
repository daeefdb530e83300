"""Packed scoring (block-diagonal attention, per-segment positions) against the padded path and the
PyTorch models, on tiny random RoBERTa, BERT and GPT-2."""
import os

import numpy as np
import pytest

from hpprompt.models import hub
from hpprompt.models import layers
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks.templates import Template

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPTS = [" It was", " Absolutely VERY absolute", "great", " movie review: really"]
VERBALIZERS = (" terrible", " great")


def test_pack_sequences_places_every_token_once():
  rng = np.random.default_rng(0)
  seqs = [list(rng.integers(5, 100, size=n)) for n in rng.integers(1, 40, size=50)]
  ids, segments, where = scoring.pack_sequences(seqs, 48, pad_id=1)
  assert ids.shape == segments.shape and ids.shape[1] == 48
  assert (segments > 0).sum() == sum(map(len, seqs))                  # no token lost or doubled
  assert np.all(ids[segments == 0] == 1)
  lower_bound = -(-sum(map(len, seqs)) // 48)
  assert ids.shape[0] <= lower_bound + 2                                # nearly no padding
  for s, (r, start) in zip(seqs, where):
    np.testing.assert_array_equal(ids[r, start:start + len(s)], s)
    seg = segments[r, start:start + len(s)]
    assert len(set(seg.tolist())) == 1 and seg[0] > 0
    assert (segments[r] == seg[0]).sum() == len(s)                      # contiguous, alone
  with pytest.raises(ValueError, match="does not fit"):
    scoring.pack_sequences([[1] * 10], 8)


@pytest.mark.parametrize("causal", [False, True])
def test_segment_mask_is_block_diagonal(causal):
  seg = np.asarray([[1, 1, 1, 2, 2, 0, 0], [1, 2, 2, 2, 3, 3, 0]], np.int32)
  mask, pos = layers.segment_mask(seg, causal=causal)
  mask = np.asarray(mask)[:, 0]
  t = seg.shape[1]
  for b in range(2):
    for i in range(t):
      for j in range(t):
        want = seg[b, i] > 0 and seg[b, i] == seg[b, j] and (j <= i or not causal)
        want = want or (seg[b, i] == 0 and i == j)                       # padding: itself only
        assert mask[b, i, j] == want, (b, i, j)
  np.testing.assert_array_equal(pos, [[0, 1, 2, 0, 1, 0, 0], [0, 0, 1, 2, 0, 1, 0]])


def _make_bert(path):
  """A tiny random BertForMaskedLM with tests/tiny.py's tokenizer (positions from 0, GELU)."""
  from tests import tiny  # noqa: PLC0415
  os.makedirs(path, exist_ok=True)
  vocab = tiny.save_tokenizer(path, masked_lm=True)
  cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=300, pad_token_id=1)
  torch.manual_seed(0)
  transformers.BertForMaskedLM(cfg).save_pretrained(path)
  return path


def _examples():
  # Inputs of very different lengths, so that padded rows waste most slots.
  train = data.load_few_shot("sst-2", 0, "train")
  return sorted(train, key=lambda e: len(e.text))[::4][:8]


def _scorers(model, tok, template, masked_lm, **kwargs):
  tmpl = Template(template, masked_lm=masked_lm)
  padded = scoring.FullScorer(model, tok, tmpl, VERBALIZERS, pack_length=None, chunk_size=32)
  packed = scoring.FullScorer(model, tok, tmpl, VERBALIZERS, **kwargs)
  return tmpl, padded, packed


def _torch_logits(model_dir, tok, texts, masked_lm, cls):
  model = cls.from_pretrained(model_dir).eval()
  verb = [tok.encode(v)[0] for v in VERBALIZERS]
  out = []
  for text in texts:
    ids = tok.encode(text, add_special_tokens=True)
    with torch.no_grad():
      logits = model(torch.tensor([ids])).logits[0].numpy()
    pos = ids.index(tok.token_to_id("<mask>")) if masked_lm else len(ids) - 1
    out.append(logits[pos, verb])
  return np.asarray(out)


@pytest.mark.parametrize("family", ["roberta", "bert", "gpt2"])
def test_packed_logits_equal_padded_and_torch(family, tiny_roberta_dir, tiny_gpt2_dir,
                                              tmp_path):
  if family == "bert":
    model_dir = _make_bert(str(tmp_path / "bert"))
  else:
    model_dir = tiny_roberta_dir if family == "roberta" else tiny_gpt2_dir
  masked_lm = family != "gpt2"
  template = "{sentence_1} {prompt} <mask> ." if masked_lm else "{prompt} {sentence_1} It was"
  model, tok = hub.load_pretrained(model_dir)
  examples = _examples()
  # Rows of 128 tokens, calls of 4 rows (one per device): several calls, a short last one.
  tmpl, padded, packed = _scorers(model, tok, template, masked_lm, pack_length=128,
                                  pack_tokens=512)
  got = packed.class_logits(PROMPTS[1:], examples)
  want = padded.class_logits(PROMPTS[1:], examples)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  assert packed.shapes == {(4, 128)}
  assert packed.calls > 1 and packed.tokens == padded.tokens
  assert packed.slots - packed.tokens < (padded.slots - padded.tokens) / 2   # less padding
  cls = {"roberta": transformers.RobertaForMaskedLM, "bert": transformers.BertForMaskedLM,
         "gpt2": transformers.GPT2LMHeadModel}[family]
  texts = [tmpl.render(e.text, p, mask_token="<mask>") for e in examples for p in PROMPTS[1:]]
  ref = _torch_logits(model_dir, tok, texts, masked_lm, cls).reshape(got.shape)
  np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_long_sequences_get_longer_rows(tiny_roberta_dir):
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  examples = [data.Example(" ".join(["good movie"] * 20), 1), data.Example("bad", 0)]
  _, padded, packed = _scorers(model, tok, "{sentence_1} {prompt} <mask> .", True, pack_length=16)
  np.testing.assert_allclose(packed.class_logits(PROMPTS[:2], examples),
                             padded.class_logits(PROMPTS[:2], examples), atol=1e-5, rtol=0)
  longest = len(tok.encode(packed.template.render(examples[0].text, PROMPTS[1]),
                           add_special_tokens=True))
  assert longest > 16
  want = 1 << (longest - 1).bit_length()                                # next power of two
  assert {s[1] for s in packed.shapes} == {want}


def test_rows_stay_within_the_position_table(tiny_roberta_dir):
  """Rows are not longer than the model's positions (300 - 2 for this RoBERTa) even when the
  next power of two is."""
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  examples = [data.Example(" ".join(["good movie"] * 135), 1), data.Example("bad", 0)]
  _, padded, packed = _scorers(model, tok, "{sentence_1} {prompt} <mask> .", True)
  np.testing.assert_allclose(packed.class_logits(PROMPTS[:1], examples),
                             padded.class_logits(PROMPTS[:1], examples), atol=1e-5, rtol=0)
  assert {s[1] for s in packed.shapes} == {298}
