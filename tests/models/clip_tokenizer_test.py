"""The CLIP tokenizer against open_clip 3.3.0's `SimpleTokenizer` (the tokenizer PIN's CLIP reward
runs): tricky strings of every kind its cleaning touches, and seeded random unicode strings."""
import builtins
import json

import numpy as np
import pytest

from hpprompt.models import clip_loader
from hpprompt.models import clip_tokenizer
from tests.models import open_clip_ref

# The kinds of text open_clip's basic_clean / whitespace_clean / regex change (issue 22).
TRICKY = [
    "fish &amp; chips",                      # HTML entity, unescaped once
    "&amp;amp; &lt;b&gt; &#39;x&#39; &quot;",  # entities unescaped twice, numeric ones
    "“curly” ‘quotes’ don’t",                # curly quotes (ftfy makes them straight)
    "ﬁne ﬂower ﬀ ﬃ",                        # ligatures
    "ＦＵＬＬ ｗｉｄｔｈ １２３！",                # full-width letters, digits, punctuation
    "<start_of_text>a cat<end_of_text>",    # open_clip 3.3.0's special-token literals
    "<START_OF_TEXT> x <End_Of_Text>",       # ... in any case (the text is lower-cased first)
    "<|startoftext|>x<|endoftext|>",        # Hugging Face's names: ordinary text for open_clip
    "<<start_of_text>> <start_of_text",      # literals inside punctuation runs, and cut short
    "🙂👍🏽 emoji 👨‍👩‍👧 🇫🇷",                      # emoji, skin tone, ZWJ sequence, flag
    "café naïve résumé Å e\u0301",           # accents, precomposed and combining
    "a\u00a0b\u2003c\td\n\ne\r\u3000f  ",    # mixed whitespace
    "Ã©tÃ© â€™",                            # mojibake (ftfy repairs it)
    "ΣΟΦΟΣ İstanbul straße ǅ",               # case mapping: final sigma, dotted I, titlecase
    "it's THEY'LL we'Re I'M",                # contractions, upper case
    "x1234y ½ ² ٣ Ⅻ",                        # digits split one by one, other numerals
    "東京タワー 한국어 عربي हिन्दी",              # CJK, Hangul, Arabic, Devanagari
    "a\u200bb\u00adc\ufeffd",                # zero-width space, soft hyphen, BOM
    "¯\\_(ツ)_/¯ --> ... ?!",                 # punctuation runs
    "an astronaut riding a horse, trending on artstation, 4k",
]

# Unicode blocks the random strings draw from (start, end inclusive), and fragments mixed in.
BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
          (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1E00, 0x1FFF), (0x2000, 0x206F),
          (0x2100, 0x22FF), (0x2460, 0x24FF), (0x3000, 0x30FF), (0x4E00, 0x4FFF),
          (0xAC00, 0xAD00), (0xFB00, 0xFB4F), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
          (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF)]
FRAGMENTS = ["&amp;", "&lt;", "&#39;", "&quot;", "<start_of_text>", "<end_of_text>",
             "<|endoftext|>", "  ", "\t", "\n", "'s", "'LL", "Ã©", "â€™"]


def random_text(rng: np.random.Generator) -> str:
  parts = []
  for _ in range(rng.integers(1, 25)):
    if rng.random() < 0.15:
      parts.append(FRAGMENTS[rng.integers(len(FRAGMENTS))])
    else:
      lo, hi = BLOCKS[rng.integers(len(BLOCKS))]
      code = int(rng.integers(lo, hi + 1))
      parts.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "?")   # no lone surrogates
  return "".join(parts)


@pytest.fixture(scope="module")
def tokenizers():
  return clip_tokenizer.clip_tokenizer(), open_clip_ref.open_clip_tokenizer().SimpleTokenizer()


@pytest.mark.parametrize("text", TRICKY)
def test_ids_equal_open_clip_on_tricky_strings(tokenizers, text):
  ours, ref = tokenizers
  assert ours.encode(text) == ref.encode(text)


def test_ids_equal_open_clip_on_random_strings(tokenizers):
  ours, ref = tokenizers
  rng = np.random.default_rng(22)
  texts = [random_text(rng) for _ in range(400)]
  assert ours.encode_batch(texts) == [ref.encode(t) for t in texts]


def test_special_literals_are_the_special_ids(tokenizers):
  ours, _ = tokenizers
  assert ours.encode("<start_of_text><end_of_text>") == [49406, 49407]
  assert 49406 not in ours.encode("<|startoftext|>")


def test_encode_for_clip_matches_open_clip_tokenize(tokenizers):
  """`[SOT] ids [EOT]`, truncated to the context with EOT last, as `SimpleTokenizer.__call__`."""
  ours, ref = tokenizers
  texts = TRICKY[:6] + ["a photo of " * 40]
  ids, eot = clip_tokenizer.encode_for_clip(ours, texts, 77)
  want = ref(texts, context_length=77).numpy()
  np.testing.assert_array_equal(ids, want[:, :ids.shape[1]])
  assert not want[:, ids.shape[1]:].any() and list(eot) == list(want.argmax(-1))


def test_missing_ftfy_is_one_line(monkeypatch):
  real_import = builtins.__import__

  def no_ftfy(name, *args, **kwargs):
    if name == "ftfy":
      raise ModuleNotFoundError("No module named 'ftfy'")
    return real_import(name, *args, **kwargs)
  monkeypatch.setattr(builtins, "__import__", no_ftfy)
  with pytest.raises(ImportError) as e:
    clip_tokenizer.clip_tokenizer()
  message = str(e.value)
  assert "\n" not in message and "hpprompt[clip]" in message and "ftfy" in message


def test_open_clip_directories_use_the_open_clip_tokenizer(tmp_path):
  """laion/* repositories carry a Hugging Face tokenizer.json too; OpenCLIP's tokenizer wins."""
  (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
  (tmp_path / "tokenizer.json").write_text("{}")
  assert isinstance(clip_loader._tokenizer(str(tmp_path)), clip_tokenizer.CLIPTokenizer)
