"""Classification rewards and accuracy against a PyTorch + NumPy re-computation; templates."""
import numpy as np
import pytest
import tokenizers

from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks.classification import ClassificationTask
from hpprompt.tasks.templates import Template
from hpprompt.tasks.templates import TemplateError
from tests.ops import references

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPTS = [" It was", " Absolutely VERY absolute", "great", " movie review:"]
VERBALIZERS = (" terrible", " great")


def _torch_class_logits(model_dir, texts, masked_lm):
  """Verbalizer logits from the PyTorch model on the joined strings (one at a time, no padding)."""
  tok = tokenizers.Tokenizer.from_file(f"{model_dir}/tokenizer.json")
  verb = [tok.encode(v, add_special_tokens=False).ids[0] for v in VERBALIZERS]
  cls = transformers.RobertaForMaskedLM if masked_lm else transformers.GPT2LMHeadModel
  model = cls.from_pretrained(model_dir).eval()
  out = []
  for text in texts:
    ids = tok.encode(text, add_special_tokens=True).ids
    with torch.no_grad():
      logits = model(torch.tensor([ids])).logits[0].numpy()
    pos = ids.index(tok.token_to_id("<mask>")) if masked_lm else len(ids) - 1
    out.append(logits[pos, verb])
  return np.asarray(out)


@pytest.mark.parametrize("masked_lm", [False, True])
def test_rewards_match_torch_numpy_recomputation(tiny_gpt2_dir, tiny_roberta_dir, masked_lm):
  model_dir = tiny_roberta_dir if masked_lm else tiny_gpt2_dir
  model, tok = hub.load_pretrained(model_dir)
  train = data.load_few_shot("sst-2", 0, "train")[:12]
  template = "{sentence_1} {prompt} <mask> ." if masked_lm else "{sentence_1} {prompt}"
  task = ClassificationTask(scoring.make_scorer(model, tok, template, VERBALIZERS), train, train)
  reward, acc = task.rewards(PROMPTS)
  tmpl = Template(template, masked_lm=masked_lm)
  texts = [tmpl.render(e.text, p) for e in train for p in PROMPTS]
  logits = _torch_class_logits(model_dir, texts, masked_lm).reshape(len(train), len(PROMPTS), 2)
  labels = np.asarray([e.label for e in train])
  want_r = np.stack([references.gap_reward_batch(logits[:, j], labels)[0].mean()
                     for j in range(len(PROMPTS))])
  np.testing.assert_allclose(reward, want_r, rtol=1e-4, atol=1e-3)
  want_acc = (np.argmax(logits, -1) == labels[:, None]).mean(0)
  np.testing.assert_allclose(task.accuracy(PROMPTS, "train"), want_acc)
  np.testing.assert_allclose(acc, want_acc)


@pytest.mark.parametrize("cache_bytes", [1 << 30, 0])      # kept encodings / streamed chunks
def test_causal_prefix_scorer_equals_full_scorer(tiny_gpt2_dir, cache_bytes):
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  examples = data.load_few_shot("sst-2", 1, "dev")[:20]
  tmpl = Template("{sentence_1} {prompt}", masked_lm=False)
  scorer = scoring.CausalScorer(model, tok, tmpl, VERBALIZERS, chunk_size=8, cache_bytes=cache_bytes)
  a = scorer.class_logits(PROMPTS, examples)
  assert bool(scorer._encoded) == bool(cache_bytes)
  b = scoring.FullScorer(model, tok, tmpl, VERBALIZERS, chunk_size=32).class_logits(PROMPTS,
                                                                                    examples)
  np.testing.assert_allclose(a, b, atol=2e-5)


def test_split_tokenization_equals_joint(tiny_gpt2_dir):
  """Encoding input and continuation separately gives the joint string's tokens (all SST-2 train)."""
  _, tok = hub.load_pretrained(tiny_gpt2_dir)
  tmpl = Template("{sentence_1} {prompt}", masked_lm=False)
  for e in data.load_few_shot("sst-2", 0, "train"):
    for p in PROMPTS:
      head, cont = tmpl.split_at_prompt(e.text)
      split = tok.encode(head) + tok.encode(cont.replace("{prompt}", p))
      assert split == tok.encode(tmpl.render(e.text, p)), (e.text, p)


def test_template_errors(tiny_gpt2_dir):
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  with pytest.raises(TemplateError, match="no {prompt}"):
    Template("{sentence_1} It was", masked_lm=False)
  with pytest.raises(TemplateError, match="exactly one <mask>"):
    Template("{sentence_1} {prompt}", masked_lm=True)
  with pytest.raises(TemplateError, match="must not contain <mask>"):
    Template("{sentence_1} {prompt} <mask>", masked_lm=False)
  with pytest.raises(TemplateError, match="unknown slot"):
    Template("{sentence_1} {prompt} {label}", masked_lm=False)
  with pytest.raises(TemplateError, match="is 2 tokens|tokens"):
    scoring.make_scorer(model, tok, "{sentence_1} {prompt}", (" terrible", " absolutelygreat"))
  # A causal template with the prompt first is scored on full sequences.
  assert isinstance(scoring.make_scorer(model, tok, "{prompt} {sentence_1}", VERBALIZERS),
                    scoring.FullScorer)


def test_calibrated_scores_match_torch_numpy(tiny_gpt2_dir):
  """Contextual calibration: log p(c|x,z) - log p(c|N/A,z), then the gap reward and argmax."""
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  train = data.load_few_shot("sst-2", 0, "train")[:10]
  task = ClassificationTask(scoring.make_scorer(model, tok, "{sentence_1} {prompt}", VERBALIZERS),
                            train, train, calibrate=True)
  reward, acc = task.rewards(PROMPTS)
  tmpl = Template("{sentence_1} {prompt}", masked_lm=False)
  texts = [tmpl.render(e.text, p) for e in train + [data.Example("N/A", 0)] for p in PROMPTS]
  logits = _torch_class_logits(tiny_gpt2_dir, texts, False).reshape(len(train) + 1, len(PROMPTS), 2)
  logp = logits - np.logaddexp(logits[..., :1], logits[..., 1:])
  cal = logp[:-1] - logp[-1:]
  labels = np.asarray([e.label for e in train])
  want = np.stack([references.gap_reward_batch(cal[:, j], labels)[0].mean()
                   for j in range(len(PROMPTS))])
  np.testing.assert_allclose(reward, want, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(acc, (np.argmax(cal, -1) == labels[:, None]).mean(0))
