"""Shared helpers for model parity tests: tiny random Hugging Face models saved to a temp dir."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def save_tiny(model_cls, config, path, seed: int = 0):
  """Builds a random PyTorch model from `config`, saves it with save_pretrained, returns it (eval)."""
  torch.manual_seed(seed)
  model = model_cls(config).eval()
  model.save_pretrained(str(path))
  return model


def random_batch(rng: np.random.Generator, vocab: int, batch: int, length: int,
                 pad: str = "right"):
  """(ids [B, T] int32, mask [B, T] bool) with rows of different lengths padded on `pad` side."""
  ids = rng.integers(0, vocab, size=(batch, length)).astype(np.int32)
  lengths = rng.integers(max(1, length // 2), length + 1, size=batch)
  lengths[0] = length
  mask = np.arange(length)[None, :] < lengths[:, None]
  if pad == "left":
    mask = mask[:, ::-1]
  return ids, mask.copy()


def torch_logits(model, ids, mask, **kwargs):
  """Logits of a causal PyTorch model with explicit position ids that skip padding."""
  ids_t = torch.tensor(ids, dtype=torch.long)
  mask_t = torch.tensor(mask, dtype=torch.long)
  positions = torch.clamp(mask_t.cumsum(-1) - 1, min=0)
  with torch.no_grad():
    out = model(input_ids=ids_t, attention_mask=mask_t, position_ids=positions, **kwargs)
  return out.logits.float().numpy()


def incremental_logits(step, cache, ids, mask, prefill: int):
  """Logits of ids [B, T]: `prefill` tokens into `cache`, then one token at a time.

  step(cache, ids, mask) -> output with .logits and .cache (a jitted call of the model)."""
  out = step(cache, ids[:, :prefill], mask[:, :prefill])
  logits, cache = [out.logits], out.cache
  for t in range(prefill, ids.shape[1]):
    out = step(cache, ids[:, t:t + 1], mask[:, t:t + 1])
    logits.append(out.logits)
    cache = out.cache
  return np.concatenate([np.asarray(x) for x in logits], 1)


def assert_close_on_mask(ours, theirs, mask, atol=1e-4):
  """Compares [B, T, ...] arrays at the real (unpadded) tokens only."""
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
  np.testing.assert_allclose(ours[mask], theirs[mask], atol=atol, rtol=0)
