"""The CLIP tokenizer: ids equal to OpenCLIP's `SimpleTokenizer` (open-clip-torch 3.3.0) on any text

CLIP's BPE ("Learning Transferable Visual Models From Natural Language Supervision", Radford et al.
2021). Encoding follows `open_clip/tokenizer.py` step by step, as PIN's reward runs it (PIN
`examples/prompt-inversion-with-clip/clip_reward.py:71,115` calls `open_clip.get_tokenizer`, whose
vendored copy `open_clip/tokenizer.py:60-70,139-145` is the same algorithm):
1. clean (open_clip 3.3.0 `basic_clean`, `whitespace_clean`, `_clean_lower`): `ftfy.fix_text`, then
   `html.unescape` twice, strip; whitespace runs -> one space; lower-case (Python's `str.lower`);
2. split with open_clip's regex (the `regex` module, IGNORECASE): the literals `<start_of_text>` /
   `<end_of_text>` (open_clip 3.3.0's names of ids 49406 / 49407: such a literal in the text encodes
   as that special id, while `<|startoftext|>` is ordinary punctuation and letters), contractions,
   letter runs, single digits, runs of other non-space characters;
3. each piece -> its UTF-8 bytes as byte-level characters -> BPE with the end-of-word suffix `</w>`.
Steps 1-2 run in Python with the same libraries as open_clip (ftfy, regex: the `clip` extra), step 3
in the `tokenizers` BPE model (merges applied lowest rank first, as `SimpleTokenizer.bpe`).

The vocabulary is the 256 byte characters, the same with `</w>`, the 48,894 merges of
`bpe_simple_vocab_16e6.txt.gz` (bundled in hpprompt/data/clip/, MIT licence, from openai/CLIP via
open-clip-torch), then ids 49406 / 49407, named here <|startoftext|> / <|endoftext|> as in Hugging
Face's CLIP tokenizers (`SOT`, `EOT`): 49,408 ids. Decoding replaces `</w>` by a space, as
`SimpleTokenizer.decode` does.
"""
import gzip
import html
import os

import tokenizers
from tokenizers import decoders
from tokenizers import models

from hpprompt.models.tokenizer import Tokenizer

VOCAB_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "clip",
                          "bpe_simple_vocab_16e6.txt.gz")
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
# open_clip 3.3.0 `SimpleTokenizer.__init__`: the special-token literals its regex matches whole.
SPECIAL_LITERALS = {"<start_of_text>": SOT, "<end_of_text>": EOT}
_PATTERN = ("|".join(SPECIAL_LITERALS) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
            r"""[^\s\p{L}\p{N}]+""")


def bytes_to_unicode() -> dict[int, str]:
  """GPT-2 / CLIP's reversible byte -> printable character map."""
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1)))
  cs = bs[:]
  n = 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return dict(zip(bs, (chr(c) for c in cs)))


def _clip_text_modules():
  """(ftfy, regex), or ImportError in one line naming the extra."""
  try:
    import ftfy  # noqa: PLC0415
    import regex  # noqa: PLC0415
  except ImportError as e:
    raise ImportError(f"the CLIP tokenizer needs ftfy and regex, as OpenCLIP's (pip install "
                      f"'hpprompt[clip]'): {e}") from None
  return ftfy, regex


class CLIPTokenizer(Tokenizer):
  """`Tokenizer` whose `encode` / `encode_batch` are OpenCLIP's `SimpleTokenizer.encode`."""

  def __init__(self, backend: tokenizers.Tokenizer, special_tokens: dict[str, str]):
    super().__init__(backend, special_tokens)
    ftfy, regex = _clip_text_modules()
    self._fix_text = ftfy.fix_text
    self._pattern = regex.compile(_PATTERN, regex.IGNORECASE)
    self._byte_chars = bytes_to_unicode()
    self._piece_ids = {lit: [backend.token_to_id(tok)] for lit, tok in SPECIAL_LITERALS.items()}

  def clean(self, text: str) -> str:
    """open_clip's `_clean_lower`: ftfy, HTML entities (twice), whitespace, lower case."""
    text = html.unescape(html.unescape(self._fix_text(text))).strip()
    return " ".join(text.split()).lower()

  def pieces(self, text: str) -> list[str]:
    """The cleaned text split by open_clip's regex (the words BPE runs on)."""
    return self._pattern.findall(self.clean(text))

  def _ids(self, piece: str) -> list[int]:
    ids = self._piece_ids.get(piece)
    if ids is None:
      chars = "".join(self._byte_chars[b] for b in piece.encode("utf-8"))
      ids = [token.id for token in self.backend.model.tokenize(chars)]
      if len(self._piece_ids) < 200_000:
        self._piece_ids[piece] = ids
    return ids

  def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
    """Ids of `text` (no SOT/EOT around it: `encode_for_clip` adds them)."""
    del add_special_tokens   # CLIP's encode never adds them
    return [i for piece in self.pieces(text) for i in self._ids(piece)]

  def encode_batch(self, texts: list[str], *, add_special_tokens: bool = False) -> list[list[int]]:
    return [self.encode(text, add_special_tokens=add_special_tokens) for text in texts]


def clip_decode(tokenizer: Tokenizer):
  """Wraps `decode` like CLIPTokenizerFast: '</w>' -> ' ', stripped."""
  decode = tokenizer.decode

  def new_decode(ids, *, skip_special_tokens: bool = False) -> str:
    return decode(ids, skip_special_tokens=skip_special_tokens).replace("</w>", " ").strip()
  tokenizer.decode = new_decode
  return tokenizer


def clip_tokenizer(vocab_file: str = VOCAB_FILE) -> CLIPTokenizer:
  """The 49,408-id CLIP tokenizer (bos <|startoftext|>, eos and pad <|endoftext|>).

  Raises ImportError (one line) without ftfy / regex.
  """
  _clip_text_modules()
  with gzip.open(vocab_file, "rt", encoding="utf-8") as f:
    lines = f.read().split("\n")
  merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
  chars = list(bytes_to_unicode().values())
  vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [SOT, EOT]
  bpe = models.BPE(vocab={v: i for i, v in enumerate(vocab)}, merges=merges,
                   continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token=EOT)
  backend = tokenizers.Tokenizer(bpe)   # encoding goes through CLIPTokenizer, not backend.encode
  backend.add_special_tokens([SOT, EOT])
  backend.decoder = decoders.ByteLevel()
  special = {"bos_token": SOT, "eos_token": EOT, "pad_token": EOT, "unk_token": EOT}
  return clip_decode(CLIPTokenizer(backend, special))


def encode_for_clip(tokenizer: Tokenizer, texts: list[str], context_length: int,
                    bucket: int = 8) -> tuple:
  """(ids [B, T] int32, eot index [B]): `[SOT] tokens [EOT]` right-padded with 0.

  Texts longer than `context_length` are truncated with EOT kept last (OpenCLIP's `tokenize`).
  The eot index is the first EOT of the row, where OpenCLIP pools (`text.argmax(dim=-1)`, EOT being
  the largest id): a text holding the literal `<end_of_text>` is pooled there, not at the end.
  T is the longest row rounded up to a multiple of `bucket` (at most `context_length`), so the
  jitted encoder compiles for few shapes; positions beyond EOT never change the pooled feature
  (causal attention), so any T >= the longest row gives the same features as 77.
  """
  import numpy as np  # noqa: PLC0415
  sot, eot = tokenizer.token_to_id(SOT), tokenizer.token_to_id(EOT)
  rows = []
  for ids in tokenizer.encode_batch(list(texts)):
    row = [sot] + ids[:context_length - 2] + [eot]
    rows.append(row)
  longest = max(len(r) for r in rows)
  width = min(context_length, -(-longest // bucket) * bucket)
  out = np.zeros((len(rows), width), np.int32)
  for i, row in enumerate(rows):
    out[i, :len(row)] = row
  return out, np.asarray([r.index(eot) for r in rows], np.int32)
