"""Every bundled and tensorflow-datasets set builds a scorer with every task-LM kind, and scores."""
import numpy as np
import pytest

from hpprompt.models import hub
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks import verbalizers
from hpprompt.tasks.data import Example
from hpprompt.tasks.templates import verbalizer_ids

pytest.importorskip("torch")
ALL_WORDS = tuple(sorted({w for spec in data.DATASETS.values()
                          for words in (spec.verbalizers,) + spec.alternatives for w in words}))
FEW_SHOT = ("sst-2", "mr", "cr", "yelp-2", "sst-5", "yelp-5", "agnews", "subj", "trec", "yahoo",
            "dbpedia")


@pytest.fixture(scope="module")
def task_lms(tmp_path_factory):
  """{kind: (model, tokenizer)}: tiny causal and masked LMs whose tokenizer has every verbalizer."""
  from tests import tiny  # noqa: PLC0415
  kw = {"tokenizer": {"words": ALL_WORDS, "vocab_size": 1024}}
  return {"causal": hub.load_pretrained(tiny.make_gpt2(str(tmp_path_factory.mktemp("g")), **kw)),
          "masked": hub.load_pretrained(tiny.make_roberta(str(tmp_path_factory.mktemp("r")), **kw))}


def _example(spec):
  return Example("a fine movie about a company", 0, "it is good" if spec.pair else None)


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_every_data_set_builds_a_scorer_and_scores(task_lms, kind):
  """Building checks the template (slots, one <mask> for masked LMs) and the verbalizers; one data
  set per distinct template is also scored (each scorer compiles its own functions)."""
  model, tok = task_lms[kind]
  scored = set()
  for name, spec in data.DATASETS.items():
    template = spec.causal_template if kind == "causal" else spec.mlm_template
    words = verbalizers.for_tokenizer(spec, tok)
    assert words == spec.verbalizers, name             # this tokenizer has the paper's words
    scorer = scoring.make_scorer(model, tok, template, words)
    assert spec.pair == scorer.template.pair, name
    if template not in scored:
      scored.add(template)
      logits = scorer.class_logits([" It was"], [_example(spec)])
      assert logits.shape == (1, 1, spec.num_classes) and np.all(np.isfinite(logits)), name
  assert len(scored) == (2 if kind == "causal" else 3)


@pytest.mark.smollm2
def test_every_bundled_set_has_single_token_verbalizers_for_smollm2():
  """The default task LM's tokenizer: a scorer for each of the 11 bundled sets (a tiny random Llama
  with SmolLM2's vocabulary stands in for the 135M weights; only the tokenizer matters here)."""
  import jax.numpy as jnp  # noqa: PLC0415
  from flax import nnx  # noqa: PLC0415
  from hpprompt.models import llama  # noqa: PLC0415
  from hpprompt.models import smollm2  # noqa: PLC0415
  from hpprompt.models.convert import gguf  # noqa: PLC0415
  tok = gguf.tokenizer_from_metadata(smollm2.checkpoint().metadata)
  cfg = llama.LlamaConfig(vocab_size=tok.vocab_size, dim=8, num_layers=1, num_heads=2,
                          num_kv_heads=1, head_dim=4, mlp_dim=8, dtype=jnp.float32)
  model = llama.Llama(cfg, rngs=nnx.Rngs(0))
  chosen = {}
  for name in FEW_SHOT:
    spec = data.get_spec(name)
    words = verbalizers.for_tokenizer(spec, tok)
    ids = verbalizer_ids(tok, words)                     # raises unless single, distinct tokens
    assert len(ids) == spec.num_classes
    scorer = scoring.make_scorer(model, tok, spec.causal_template, words)
    if name in ("yahoo", "dbpedia"):                     # the sets with replaced verbalizers
      assert np.all(np.isfinite(scorer.class_logits([" It was"], [_example(spec)])))
    chosen[name] = words
  # The documented replacements (hpprompt/data/README.md): only where the paper's word splits.
  assert chosen["yahoo"] == data.get_spec("yahoo").alternatives[0]
  assert chosen["dbpedia"][11] == " album"
  assert all(chosen[n] == data.get_spec(n).verbalizers for n in FEW_SHOT
             if n not in ("yahoo", "dbpedia"))
