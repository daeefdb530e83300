"""Prompt templates and verbalizers (RLPrompt `fsc_helpers.py`, `fsc_reward.py`).

A template is a format string with `{sentence_1}`, `{prompt}`, optionally `{sentence_2}` (pair tasks)
and, for masked LMs, one `<mask>`. RLPrompt renders it with `template.format(sentence_1=x, prompt=p)`,
where p is the policy's prompt tokens turned into a string (usually with a leading space).
"""
import dataclasses
import re

import numpy as np

from hpprompt.models.tokenizer import Tokenizer

MASK = "<mask>"


class TemplateError(ValueError):
  """A template or verbalizer that cannot work with the task LM."""


@dataclasses.dataclass(frozen=True)
class Template:
  text: str
  masked_lm: bool

  def __post_init__(self):
    fields = set(re.findall(r"{(\w+)}", self.text))
    if "prompt" not in fields:
      raise TemplateError(f"template {self.text!r} has no {{prompt}} slot.")
    if "sentence_1" not in fields:
      raise TemplateError(f"template {self.text!r} has no {{sentence_1}} slot.")
    unknown = fields - {"prompt", "sentence_1", "sentence_2"}
    if unknown:
      raise TemplateError(f"template {self.text!r}: unknown slot(s) {sorted(unknown)}.")
    masks = self.text.count(MASK)
    if self.masked_lm and masks != 1:
      raise TemplateError(f"masked-LM template {self.text!r} needs exactly one {MASK}.")
    if not self.masked_lm and masks:
      raise TemplateError(f"causal-LM template {self.text!r} must not contain {MASK}: the label is "
                          "read from the next-token logits after the template.")

  @property
  def pair(self) -> bool:
    return "{sentence_2}" in self.text

  def render(self, sentence_1: str, prompt: str, sentence_2: str | None = None,
             mask_token: str = MASK) -> str:
    text = self.text.replace(MASK, mask_token) if mask_token != MASK else self.text
    return _format(text, sentence_1=sentence_1, prompt=prompt, sentence_2=sentence_2)

  def split_at_prompt(self, sentence_1: str, sentence_2: str | None = None) -> tuple[str, str]:
    """(input part, continuation format) around {prompt}, for prefix caching of causal task LMs.

    The input part is everything before {prompt} with the whitespace just before {prompt} moved into
    the continuation, so byte-level BPE tokenizes the two parts as it would the joined string
    (pre-tokens never span a boundary placed before whitespace). The continuation is a format string
    with the {prompt} slot left.
    """
    head, tail = self.text.split("{prompt}", 1)
    stripped = head.rstrip()
    space = head[len(stripped):]
    if "{sentence_1}" in tail or "{sentence_2}" in tail:
      raise TemplateError(f"template {self.text!r}: an input comes after {{prompt}}, so inputs "
                          "cannot be encoded once as a shared prefix.")
    prefix = _format(stripped, sentence_1=sentence_1, sentence_2=sentence_2)
    return prefix, space + "{prompt}" + tail

  @property
  def prompt_after_inputs(self) -> bool:
    tail = self.text.split("{prompt}", 1)[1]
    return "{sentence_1}" not in tail and "{sentence_2}" not in tail


def _format(text: str, **slots) -> str:
  # str.format would choke on braces inside the inputs' text; replace the slots one by one.
  for key, value in slots.items():
    if value is not None:
      text = text.replace("{" + key + "}", value)
  return text


def verbalizer_ids(tokenizer: Tokenizer, verbalizers: tuple[str, ...]) -> np.ndarray:
  """Token id of every verbalizer; each must be exactly one token of `tokenizer`."""
  ids = []
  for word in verbalizers:
    tokens = tokenizer.encode(word)
    if len(tokens) != 1:
      pieces = [tokenizer.id_to_token(t) for t in tokens]
      raise TemplateError(f"verbalizer {word!r} is {len(tokens)} tokens {pieces} for this task "
                          "tokenizer; verbalizers must be single tokens (pass --verbalizers).")
    ids.append(tokens[0])
  if len(set(ids)) != len(ids):
    raise TemplateError(f"verbalizers {verbalizers} map to repeated token ids {ids}.")
  return np.asarray(ids, np.int32)
