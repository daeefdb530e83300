"""The CLIP tokenizer (OpenAI's `SimpleTokenizer`, as OpenCLIP ships it) on `tokenizers`.

CLIP's BPE ("Learning Transferable Visual Models From Natural Language Supervision", Radford et al.
2021): lower-cased, whitespace-collapsed text is split by the regex below, each piece is mapped to
byte-level characters, and BPE merges run with the end-of-word suffix `</w>`. The vocabulary is the
256 byte characters, the same with `</w>`, the 48,894 merges of `bpe_simple_vocab_16e6.txt.gz`
(bundled in hpprompt/data/clip/, MIT licence, from openai/CLIP via open-clip-torch), then
<|startoftext|> (49406) and <|endoftext|> (49407): 49,408 ids. This is the same construction as
transformers' `CLIPTokenizerFast` (`convert_slow_tokenizer.CLIPConverter`). OpenCLIP also runs
ftfy.fix_text and html.unescape first; they only change mojibake and HTML entities.

Decoding replaces `</w>` by a space, as `SimpleTokenizer.decode` does.
"""
import gzip
import os

import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers

from hpprompt.models.tokenizer import Tokenizer

VOCAB_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "clip",
                          "bpe_simple_vocab_16e6.txt.gz")
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
            r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")


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


def clip_decode(tokenizer: Tokenizer):
  """Wraps `decode` like CLIPTokenizerFast: '</w>' -> ' ', stripped."""
  decode = tokenizer.decode

  def new_decode(ids, *, skip_special_tokens: bool = False) -> str:
    return decode(ids, skip_special_tokens=skip_special_tokens).replace("</w>", " ").strip()
  tokenizer.decode = new_decode
  return tokenizer


def clip_tokenizer(vocab_file: str = VOCAB_FILE) -> Tokenizer:
  """The 49,408-id CLIP tokenizer (bos <|startoftext|>, eos and pad <|endoftext|>)."""
  with gzip.open(vocab_file, "rt", encoding="utf-8") as f:
    lines = f.read().split("\n")
  merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
  chars = list(bytes_to_unicode().values())
  vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [SOT, EOT]
  bpe = models.BPE(vocab={v: i for i, v in enumerate(vocab)}, merges=merges,
                   continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token=EOT)
  backend = tokenizers.Tokenizer(bpe)
  backend.add_special_tokens([SOT, EOT])
  backend.normalizer = normalizers.Sequence([
      normalizers.NFC(), normalizers.Replace(tokenizers.Regex(r"\s+"), " "),
      normalizers.Lowercase(), normalizers.Strip()])
  backend.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Split(tokenizers.Regex(_PATTERN), behavior="removed", invert=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  backend.decoder = decoders.ByteLevel()
  special = {"bos_token": SOT, "eos_token": EOT, "pad_token": EOT, "unk_token": EOT}
  return clip_decode(Tokenizer(backend, special))


def encode_for_clip(tokenizer: Tokenizer, texts: list[str], context_length: int,
                    bucket: int = 8) -> tuple:
  """(ids [B, T] int32, eot index [B]): `[SOT] tokens [EOT]` right-padded with 0.

  Texts longer than `context_length` are truncated with EOT kept last (OpenCLIP's `tokenize`).
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
  return out, np.asarray([len(r) - 1 for r in rows], np.int32)
