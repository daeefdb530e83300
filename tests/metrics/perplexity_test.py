"""Prompt / corpus perplexity equals the PyTorch model's own NLL, across chunk boundaries."""
import numpy as np
import pytest

from hpprompt.metrics import perplexity
from hpprompt.metrics import style_transfer as st_metrics
from hpprompt.models import hub

WORDS = "the food was great bad service and staff friendly rude movie okay not a it".split()


def _texts(n, seed=0):
  rng = np.random.default_rng(seed)
  return [" ".join(rng.choice(WORDS, size=rng.integers(1, 12))) for _ in range(n)]


def _torch_nll(model_dir, ids_list):
  """Mean NLL of tokens 2..L of each id list (one unpadded sequence at a time) and its count."""
  torch = pytest.importorskip("torch")
  import transformers  # noqa: PLC0415
  model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
  out = []
  for ids in ids_list:
    with torch.no_grad():
      logits = model(torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    out.append(-logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean().item())
  return np.asarray(out), np.asarray([len(ids) - 1 for ids in ids_list])


@pytest.mark.parametrize("bos", [True, False])
def test_prompt_nll_equals_torch_over_chunks(tiny_gpt2_dir, bos):
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  texts = _texts(perplexity._CHUNK + 9)              # two chunks, the second one padded
  nll, count = perplexity.prompt_nll(model, tok, texts, bos=bos)
  start = tok.special_id("bos") if tok.special_id("bos") is not None else tok.special_id("eos")
  ids = [([start] if bos else []) + tok.encode(t) for t in texts]
  keep = [i for i, s in enumerate(ids) if len(s) >= 2]
  want, want_count = _torch_nll(tiny_gpt2_dir, [ids[i] for i in keep])
  assert nll.shape == count.shape == (len(texts),)
  np.testing.assert_array_equal(count[keep], want_count)
  np.testing.assert_allclose(nll[keep], want, rtol=1e-5, atol=1e-5)
  assert all(np.isnan(nll[i]) and count[i] == 0 for i in set(range(len(texts))) - set(keep))
  np.testing.assert_allclose(perplexity.prompt_perplexity(model, tok, texts, bos=bos)[keep],
                             np.exp(want), rtol=1e-4)


def test_corpus_perplexity_is_token_weighted(tiny_gpt2_dir):
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  texts = [t for t in _texts(70, seed=1) if len(tok.encode(t)) >= 2]
  nll, count = _torch_nll(tiny_gpt2_dir, [tok.encode(t) for t in texts])
  want = np.exp(((count + 1) * nll).sum() / (count + 1).sum())
  np.testing.assert_allclose(st_metrics.corpus_perplexity(model, tok, texts), want, rtol=1e-5)
