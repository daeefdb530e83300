"""FLOP counts against closed forms, XLA's cost analysis, and per-sequence traces."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from hpprompt.metrics import flops
from hpprompt.models import bert
from hpprompt.models import gpt2
from hpprompt.models import hub
from hpprompt.models import llama
from hpprompt.tasks import data
from hpprompt.tasks import scoring
from hpprompt.tasks.templates import Template

VERB = jnp.asarray([3, 7, 11])          # three verbalizer tokens
L, D, H, M, V = 2, 48, 4, 80, 97


def test_dot_flops_of_matmuls_einsums_and_scans():
  a, b = jnp.ones((5, 7)), jnp.ones((7, 3))
  assert flops.dot_flops(jnp.matmul, a, b) == 2 * 5 * 7 * 3
  x, y = jnp.ones((2, 4, 6)), jnp.ones((2, 6, 9))
  assert flops.dot_flops(lambda x, y: jnp.einsum("bij,bjk->bik", x, y), x, y) == 2 * 2 * 4 * 6 * 9

  def scanned(a):
    return jax.lax.scan(lambda c, _: (jax.jit(jnp.matmul)(c, jnp.ones((7, 7))), None), a, None,
                        length=4)[0]
  assert flops.dot_flops(scanned, a) == 4 * 2 * 5 * 7 * 7


def _bert():
  cfg = bert.BertConfig(vocab_size=V, max_positions=64, dim=D, num_layers=L, num_heads=H,
                        mlp_dim=M, flavor="roberta", position_offset=2)
  return bert.build(cfg, rngs=nnx.Rngs(0))


def _gpt2():
  cfg = gpt2.GPT2Config(vocab_size=V, max_positions=64, dim=D, num_layers=L, num_heads=H,
                        mlp_dim=M)
  return gpt2.GPT2(cfg, rngs=nnx.Rngs(0))


def _llama(kv=2, head_dim=8):
  cfg = llama.LlamaConfig(vocab_size=V, dim=D, num_layers=L, num_heads=H, num_kv_heads=kv,
                          head_dim=head_dim, mlp_dim=M)
  return llama.Llama(cfg, rngs=nnx.Rngs(0))


def test_forward_flops_equal_closed_forms():
  # Per token per layer: 2 x (q, k, v, o projections + MLP) multiply-adds; per attention pair per
  # layer: QK^T and PV, 2 x 2 x heads x head_dim; per read: the head's matmuls at one position.
  got = flops.ForwardFlops.of(_bert(), VERB)
  assert got == flops.ForwardFlops(per_token=2 * L * (4 * D * D + 2 * D * M),
                                   per_pair=4 * L * D, per_read=2 * D * D + 2 * D * len(VERB))
  got = flops.ForwardFlops.of(_gpt2(), VERB)
  assert got == flops.ForwardFlops(2 * L * (4 * D * D + 2 * D * M), 4 * L * D, 2 * D * len(VERB))
  kv, hd = 2, 8                                  # grouped-query attention, head_dim != D / H
  got = flops.ForwardFlops.of(_llama(kv, hd), VERB)
  proj = 2 * D * H * hd + 2 * D * kv * hd + 3 * D * M
  assert got == flops.ForwardFlops(2 * L * proj, 4 * L * H * hd, 2 * D * len(VERB))


def test_forward_flops_match_xla_cost_analysis():
  """XLA counts every op (norms, softmax, GELU too); its count is above ours by the elementwise
  work only, a few percent at a width where matmuls dominate."""
  cfg = bert.BertConfig(vocab_size=V, max_positions=64, dim=256, num_layers=2, num_heads=4,
                        mlp_dim=1024)
  model = bert.build(cfg, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  ids = jnp.zeros((1, 32), jnp.int32)
  fwd = jax.jit(lambda s, i: nnx.merge(graphdef, s)(i, compute_logits=False).hidden)
  cost = fwd.lower(state, ids).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  ours = flops.ForwardFlops.of(model).sequences([32], causal=False, reads=False)
  assert ours <= cost["flops"] <= 1.15 * ours, (ours, cost["flops"])


def test_sequence_and_continuation_counts():
  f = flops.ForwardFlops(per_token=10, per_pair=3, per_read=7)
  assert f.sequences([2, 5], causal=False) == 10 * 7 + 3 * (4 + 25) + 7 * 2
  assert f.sequences([2, 5], causal=True, reads=False) == 10 * 7 + 3 * (3 + 15)
  # prefixes of 4 and 6 tokens, continuations of 1 and 3: t tokens attend s + (1..t) keys each.
  pairs = sum(t * s + t * (t + 1) // 2 for s in (4, 6) for t in (1, 3))
  assert f.continuations([4, 6], [1, 3]) == 10 * 2 * 4 + 3 * pairs + 7 * 4


def test_scorer_flops_equal_per_sequence_traces(tiny_roberta_dir):
  """A reward's FLOPs = the sum over its sequences of one unpadded forward + head each, traced."""
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  examples = data.load_few_shot("sst-2", 0, "train")[:5]
  prompts = [" It was", " so very"]
  tmpl = Template("{sentence_1} {prompt} <mask> .", masked_lm=True)
  scorer = scoring.FullScorer(model, tok, tmpl, (" terrible", " great"))
  scorer.class_logits(prompts, examples)
  graphdef, state = nnx.split(model)
  verb = scorer.verbalizer_ids

  def one(state, ids, read):
    m = nnx.merge(graphdef, state)
    hidden = m(ids, compute_logits=False).hidden
    return scoring.verbalizer_logits(m, hidden[:, read], verb)

  want = 0
  for e in examples:
    for p in prompts:
      ids = tok.encode(tmpl.render(e.text, p), add_special_tokens=True)
      want += flops.dot_flops(lambda s, i: one(s, i, 0), state, jnp.asarray([ids]))
  assert scorer.flops == want


def test_matmul_peak_is_positive():
  assert np.isfinite(flops.matmul_peak(size=64, repeats=1)) and flops.matmul_peak(64, repeats=1) > 0


def test_prefix_scorer_counts_what_full_sequences_count(tiny_gpt2_dir):
  """One prompt: encoding the inputs once + their continuations is the whole causal sequences'
  work, so CausalScorer and FullScorer report the same FLOPs (and the second call only the
  continuations: the encoded inputs are kept)."""
  model, tok = hub.load_pretrained(tiny_gpt2_dir)
  examples = data.load_few_shot("sst-2", 0, "dev")[:6]
  tmpl = Template("{sentence_1} {prompt}", masked_lm=False)
  verbs = (" terrible", " great")
  causal = scoring.CausalScorer(model, tok, tmpl, verbs)
  full = scoring.FullScorer(model, tok, tmpl, verbs)
  causal.class_logits([" It was"], examples)
  full.class_logits([" It was"], examples)
  assert causal.flops == full.flops > 0
  encoded = causal.flops
  causal.class_logits([" It was"], examples)
  assert 0 < causal.flops - encoded < encoded


def test_step_rewards_report_flops(tiny_roberta_dir):
  from hpprompt.tasks.classification import ClassificationTask  # noqa: PLC0415
  model, tok = hub.load_pretrained(tiny_roberta_dir)
  train = data.load_few_shot("sst-2", 0, "train")[:4]
  scorer = scoring.make_scorer(model, tok, "{sentence_1} {prompt} <mask> .", (" terrible", " great"))
  task = ClassificationTask(scorer, train, train)
  first = task.step_rewards([" It was", " so"], 0).metrics
  tmpl = scorer.template
  lengths = [len(tok.encode(tmpl.render(e.text, p), add_special_tokens=True))
             for e in train for p in (" It was", " so")]
  assert first["reward_flops"] == scorer.flop_counter.sequences(lengths, causal=False)
  assert first["reward_flops_per_s"] > 0
  again = task.step_rewards([" It was"], 1).metrics            # memoised: nothing computed
  assert again["reward_flops"] == 0 and again["reward_flops_per_s"] == 0
