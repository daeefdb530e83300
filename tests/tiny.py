"""Tiny random Hugging Face models with a small trained BPE tokenizer, saved to a directory.

Used by task, agent and launcher tests: real loading code paths (config.json + model.safetensors +
tokenizer.json), CI-sized compute. The tokenizer is a byte-level BPE trained on the bundled SST-2
few-shot data plus the verbalizers, so ' great' and ' terrible' are single tokens.
"""
import json
import os

import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers
from tokenizers import processors
from tokenizers import trainers

from hpprompt.tasks import data

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]   # ids 0..4, RoBERTa order


def train_tokenizer(vocab_size: int = 512, masked_lm: bool = False,
                    words: tuple[str, ...] = ()) -> tokenizers.Tokenizer:
  """`words`: extra texts (e.g. every data set's verbalizers) frequent enough to become tokens."""
  texts = [e.text for split in ("train", "dev") for e in data.load_few_shot("sst-2", 0, split)]
  texts += [" great terrible good bad okay"] * 50 + [w for w in words for _ in range(50)]
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(texts, trainer)
  if masked_lm:
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
  return tok


def save_tokenizer(path: str, masked_lm: bool = False, **kwargs) -> int:
  tok = train_tokenizer(masked_lm=masked_lm, **kwargs)
  tok.save(os.path.join(path, "tokenizer.json"))
  special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
  if masked_lm:
    special["mask_token"] = "<mask>"
  with open(os.path.join(path, "special_tokens_map.json"), "w") as f:
    json.dump(special, f)
  return tok.get_vocab_size()


def make_gpt2(path: str, *, layers: int = 2, dim: int = 32, heads: int = 4, seed: int = 0,
              tokenizer: dict | None = None, **options) -> str:
  """`options` are further GPT2Config fields (e.g. initializer_range); `tokenizer`: arguments of
  `train_tokenizer`."""
  import torch  # noqa: PLC0415
  import transformers  # noqa: PLC0415
  os.makedirs(path, exist_ok=True)
  vocab = save_tokenizer(path, **(tokenizer or {}))
  cfg = transformers.GPT2Config(**{
      "vocab_size": vocab, "n_positions": 512, "n_embd": dim, "n_layer": layers, "n_head": heads,
      "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, **options})
  torch.manual_seed(seed)
  transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
  return path


def make_roberta(path: str, *, layers: int = 2, dim: int = 32, heads: int = 4, seed: int = 0,
                 tokenizer: dict | None = None) -> str:
  import torch  # noqa: PLC0415
  import transformers  # noqa: PLC0415
  os.makedirs(path, exist_ok=True)
  vocab = save_tokenizer(path, masked_lm=True, **(tokenizer or {}))
  cfg = transformers.RobertaConfig(vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers,
                                   num_attention_heads=heads, intermediate_size=2 * dim,
                                   max_position_embeddings=300, pad_token_id=1, bos_token_id=0,
                                   eos_token_id=2)
  torch.manual_seed(seed)
  transformers.RobertaForMaskedLM(cfg).save_pretrained(path)
  return path
