"""Verbalizers: user spellings, a data set's verbalizers for a task tokenizer, what is scored.

A verbalizer is the text of one token of the task tokenizer (e.g. ' great' with its leading space,
RLPrompt's 'Ġgreat'). absl's list flag strips spaces around each item (and reads double quotes as
CSV quoting), so `--verbalizers` accepts the forms that keep a leading space visible: 'Ġgreat'
(byte-level BPE's space mark, also SentencePiece's '▁') or single-quoted "' great'"; a bare 'great'
means no leading space. Launchers print the scored tokens at the start of a run.
"""
from hpprompt.models.tokenizer import Tokenizer
from hpprompt.tasks.data import DatasetSpec
from hpprompt.tasks.templates import TemplateError

SPACE_MARKS = ("Ġ", "▁")   # byte-level BPE (GPT-2, RoBERTa, SmolLM2), SentencePiece


def parse_one(word: str) -> str:
  """'Ġgreat' / '▁great' / "' great'" / '" great"' -> ' great'; anything else unchanged."""
  if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
    return word[1:-1]
  for mark in SPACE_MARKS:
    if word.startswith(mark):
      return " " + word[len(mark):]
  return word


def parse(words) -> tuple[str, ...]:
  out = tuple(parse_one(w) for w in words)
  if any(not w for w in out):
    raise ValueError(f"empty verbalizer in {list(words)}.")
  return out


def _single_tokens(tokenizer: Tokenizer, words) -> bool:
  return all(len(tokenizer.encode(w)) == 1 for w in words)


def for_tokenizer(spec: DatasetSpec, tokenizer: Tokenizer) -> tuple[str, ...]:
  """The paper's verbalizers if each is one token of `tokenizer`, else the first of the data set's
  documented single-token alternatives that is (e.g. yahoo with SmolLM2: ' sports' for 'sports').
  Your own data: the class names with a leading space, each one token, else an error naming the
  class (`hpprompt.tasks.user_data`)."""
  if not spec.named:
    raise TemplateError(f"{spec.name}: the labels are integers, so the classes have no words: give "
                        "--verbalizers (one token each, in label order, a leading space as "
                        "'Ġword') or name the classes with --classes.")
  for words in (spec.verbalizers,) + spec.alternatives:
    if _single_tokens(tokenizer, words):
      return words
  bad = [w for w in spec.verbalizers if not _single_tokens(tokenizer, [w])]
  if spec.classes:
    name = spec.classes[spec.verbalizers.index(bad[0])]
    raise TemplateError(f"{spec.name}: class {name!r} (verbalizer {bad[0]!r}) is "
                        f"{len(tokenizer.encode(bad[0]))} tokens of this task tokenizer; give "
                        "single-token --verbalizers, one per class in label order (a leading space "
                        "as 'Ġword').")
  raise TemplateError(f"{spec.name}: verbalizers {bad} are several tokens of this task tokenizer "
                      "and no documented alternative fits; pass single-token --verbalizers (a leading "
                      "space as 'Ġword').")


def describe(scorer) -> str:
  """The scored tokens, e.g. "0 'Ġterrible' (id 6), 1 'Ġgreat' (id 7)"."""
  tok = scorer.tokenizer
  return ", ".join(f"{c} {tok.id_to_token(int(i))!r} (id {int(i)})"
                   for c, i in enumerate(scorer.verbalizer_ids))
