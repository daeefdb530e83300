"""Flax NNX language and vision-language models converted from Hugging Face checkpoints.

Floor 1: models, strict converters (`convert`), tokenizers, the KV cache and the shared scoring
math of the LM interface (`base`: `CausalLM`, `MaskedLM`, `verbalizer_logits`); imports only ops
and training.
"""
from hpprompt.models.base import CausalLM
from hpprompt.models.base import LMOutput
from hpprompt.models.base import MaskedLM
from hpprompt.models.cache import KVCache
from hpprompt.models.cache import SharedPrefix
from hpprompt.models.convert.core import ConversionError
from hpprompt.models.hub import load_model
from hpprompt.models.hub import load_pretrained
from hpprompt.models.tokenizer import Tokenizer

__all__ = ("CausalLM", "ConversionError", "KVCache", "LMOutput", "MaskedLM", "SharedPrefix",
           "Tokenizer", "load_model", "load_pretrained")
