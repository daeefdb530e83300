"""A thin wrapper over `tokenizers.Tokenizer` with the Hugging Face special tokens we need.

Reads `tokenizer.json` when a model directory has one, else builds a byte-level BPE from
`vocab.json` + `merges.txt` (GPT-2, RoBERTa, OPT) or a WordPiece from `vocab.txt` (BERT). Special tokens
come from `special_tokens_map.json` / `tokenizer_config.json` when present.
"""
import json
import os

import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers

from hpprompt.models.convert.core import ConversionError

_SPECIAL = ("bos_token", "eos_token", "pad_token", "mask_token", "unk_token", "cls_token",
            "sep_token")


def _token_str(value) -> str | None:
  if isinstance(value, dict):
    return value.get("content")
  return value


class Tokenizer:
  """Text <-> ids. `tokens` are the vocabulary strings (byte-level BPE shows a space as 'Ġ')."""

  def __init__(self, tokenizer: tokenizers.Tokenizer, special_tokens: dict[str, str] | None = None):
    self.backend = tokenizer
    self.special_tokens = dict(special_tokens or {})

  @classmethod
  def from_dir(cls, model_dir: str) -> "Tokenizer":
    path = lambda name: os.path.join(model_dir, name)
    if os.path.exists(path("tokenizer.json")):
      backend = tokenizers.Tokenizer.from_file(path("tokenizer.json"))
    elif os.path.exists(path("vocab.json")) and os.path.exists(path("merges.txt")):
      backend = tokenizers.Tokenizer(models.BPE.from_file(path("vocab.json"), path("merges.txt")))
      backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
      backend.decoder = decoders.ByteLevel()
    elif os.path.exists(path("vocab.txt")):
      backend = tokenizers.BertWordPieceTokenizer(path("vocab.txt"), lowercase=True)._tokenizer
    else:
      raise ConversionError(f"{model_dir}: no tokenizer.json, vocab.json+merges.txt or vocab.txt.")
    special = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
      if os.path.exists(path(name)):
        with open(path(name)) as f:
          data = json.load(f)
        special.update({k: _token_str(data[k]) for k in _SPECIAL if data.get(k) is not None})
    return cls(backend, special)

  @property
  def vocab_size(self) -> int:
    return self.backend.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
    return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

  def encode_batch(self, texts: list[str], *, add_special_tokens: bool = False) -> list[list[int]]:
    return [e.ids for e in self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)]

  def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
    return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def token_to_id(self, token: str) -> int | None:
    return self.backend.token_to_id(token)

  def id_to_token(self, idx: int) -> str | None:
    return self.backend.id_to_token(int(idx))

  def special_ids(self) -> set[int]:
    """Ids of all special tokens: added special tokens and the named ones (bos, eos, pad, ...)."""
    ids = {i for i, tok in self.backend.get_added_tokens_decoder().items() if tok.special}
    for token in self.special_tokens.values():
      i = self.token_to_id(token) if token is not None else None
      if i is not None:
        ids.add(i)
    return ids

  def special_id(self, name: str) -> int | None:
    """Id of 'bos', 'eos', 'pad', 'mask', 'unk', 'cls' or 'sep' (None if the tokenizer has none)."""
    token = self.special_tokens.get(f"{name}_token")
    return None if token is None else self.token_to_id(token)
