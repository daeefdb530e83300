"""Task-LM generation: token-by-token equal to transformers' step-by-step logits with the same
noise."""
import jax
import numpy as np
import pytest

from hpprompt.tasks import generation

SOURCES = ["the food was cold and the staff rude .", "a great movie"]
PROMPTS = ["", " It was", " great terrible good"]


def test_postprocess_matches_rlprompt_rules():
  assert generation.postprocess(' the food was great. really" and more', lower=True) == \
      "the food was great."
  assert generation.postprocess('Great Food! yes?" x') == "Great Food!"
  assert generation.postprocess("no end mark at all  ") == "no end mark at all"
  assert generation.postprocess('"') == ""
  assert generation.postprocess("Why? no. ") == "Why?"


def test_max_new_tokens():
  assert [generation.max_new_tokens(n) for n in (1, 19, 20, 21, 30)] == [11, 29, 30, 32, 45]


def test_split_tokenization_equals_whole(tiny_lm):
  _, tok = tiny_lm
  gen = generation.Generator(*tiny_lm)
  prompt_seqs, input_seqs, _ = gen.encode(PROMPTS, SOURCES)
  for p, pids in zip(PROMPTS, prompt_seqs):
    for s, iids in zip(SOURCES, input_seqs):
      assert pids + iids == tok.encode(generation.TEMPLATE.format(prompt=p, sentence_1=s))


def test_sampler_equals_transformers_step_by_step(tiny_gpt2_dir, tiny_lm, top_k=10):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  ref = transformers.GPT2LMHeadModel.from_pretrained(tiny_gpt2_dir).eval()
  gen = generation.Generator(*tiny_lm, top_k=top_k)
  key = jax.random.PRNGKey(3)
  samples = 2
  tokens, lengths = gen.sample_ids(PROMPTS, SOURCES, samples, key)
  p, n, s, t_max = tokens.shape
  assert (p, n, s) == (3, 2, 2) and lengths.shape == (3, 2, 2)
  prompt_seqs, input_seqs, limits = gen.encode(PROMPTS, SOURCES)
  # The jitted call ran on prompts padded to 4 (a power of two): rows are laid out (4, n, s).
  padded_p = 4
  stop = np.asarray(gen.stop_table)
  vocab = stop.shape[0]
  noise = [np.asarray(jax.random.gumbel(jax.random.fold_in(key, t), (padded_p * n * s, vocab)))
           for t in range(t_max)]
  for i in range(p):
    for j in range(n):
      for k in range(s):
        row = (i * n + j) * s + k
        ids = list(prompt_seqs[i] + input_seqs[j])
        expected = []
        for t in range(limits[j]):
          with torch.no_grad():
            logits = ref(torch.tensor([ids])).logits[0, -1].double().numpy()
          if top_k:
            logits = np.where(logits >= np.sort(logits)[-top_k], logits, -np.inf)
          a = int(np.argmax(logits + noise[t][row]))
          expected.append(a)
          ids.append(a)
          if stop[a]:
            break
        assert lengths[i, j, k] == len(expected)
        np.testing.assert_array_equal(tokens[i, j, k, :len(expected)], expected)
  # Rows that never met a stop token ran to their source's limit.
  assert (lengths <= np.asarray(limits)[None, :, None]).all()


def test_generate_texts_are_postprocessed(tiny_lm):
  gen = generation.Generator(*tiny_lm, lower=True)
  texts = gen.generate(PROMPTS[:2], SOURCES, 2, jax.random.PRNGKey(0))
  assert len(texts) == 2 and all(len(t) == 2 and all(len(x) == 2 for x in t) for t in texts)
  for t in (x for a in texts for b in a for x in b):
    assert '"' not in t and t == t.lower() and t == t.strip()


def test_context_overflow_is_a_value_error(tiny_lm):
  gen = generation.Generator(*tiny_lm)
  with pytest.raises(ValueError, match="positions"):
    gen.check_length([" great" * 600], SOURCES)


def test_top_k_sample_is_not_compiled_as_a_full_sort():
  """Reading the k-th value as v[:, -1] compiled lax.top_k as a full sort of every row on XLA:CPU
  (10x slower per decoding step at 128 x 49k); the min of the top k keeps XLA's TopK."""
  logits = jax.random.normal(jax.random.PRNGKey(0), (4, 300))
  fn = jax.jit(lambda x, key: generation.top_k_sample(x, key, 10))
  assert " sort(" not in fn.lower(logits, jax.random.PRNGKey(1)).compile().as_text()
  # Still the top-k sample: the drawn token is among the 10 largest logits of its row.
  token = np.asarray(fn(logits, jax.random.PRNGKey(1)))
  top = np.argsort(-np.asarray(logits), axis=1)[:, :10]
  assert all(t in row for t, row in zip(token, top))


def test_dropping_finished_rows_keeps_the_tokens(tiny_lm):
  """Decoding with finished rows dropped between calls (compact_every) is a re-layout only."""
  sources = ["a", "the food was cold and the staff rude , and the wait was long .", "a great movie"]
  key = jax.random.PRNGKey(7)
  prompts = PROMPTS[1:]
  whole = generation.Generator(*tiny_lm, compact_every=0).sample_ids(prompts, sources, 4, key)
  gen = generation.Generator(*tiny_lm, compact_every=2)
  tokens, lengths = gen.sample_ids(prompts, sources, 4, key)       # rows 2 x 4 x 4
  assert gen.decode_rows[0] == 32 and min(gen.decode_rows) < 32      # rows were dropped
  assert set(gen.decode_rows) <= {32, 16, 8}                         # few compiled shapes
  np.testing.assert_array_equal(lengths, whole[1])
  np.testing.assert_array_equal(tokens, whole[0])
