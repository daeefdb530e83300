"""Textual inversion on CPU: CLIP reward throughput and one agent step, hpprompt vs transformers.

  python benchmarks/clip_bench.py                      # ViT-B/32- and ViT-H/14-sized random CLIPs
  python benchmarks/clip_bench.py --sizes=b32 --quick  # small, fast check

Random weights (no download): transformers builds `CLIPModel` from configs with the real sizes
(OpenAI ViT-B/32: text 512 x 12, vision 768 x 12 / patch 32; OpenCLIP ViT-H/14: text 1024 x 24,
vision 1280 x 32 / patch 14, GELU), hpprompt's converter fills our NNX CLIP from its state dict,
so both sides run the same weights (`--text_only_reference`, default h14: that size's reference is
transformers' text tower only, beside a B/32 image tower, to fit a shared machine's memory). Prints
two tables:
  1. reward throughput: prompts scored per second (text tower + cosine with the target embedding,
     `CLIPScorer.scores` against `get_text_features` + cosine), and one target image encoded;
     hpprompt and transformers calls alternate (interleaved), so machine load hits both alike;
  2. one PIN training step (paper shape: 32 prompts of 8 tokens, filter k = 20,000; replay batch 64)
     with the real SmolLM2-135M policy, split into sample / reward / learn, and the same step's
     reward computed by transformers.
"""
import argparse
import gc
import os
import statistics
import time

import jax
import numpy as np
import torch
import transformers
from flax import nnx

from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import get_preset
from hpprompt.launch.textual_inversion import BUNDLED_IMAGES
from hpprompt.models import clip
from hpprompt.models import clip_tokenizer
from hpprompt.models import hub
from hpprompt.models.convert.core import fill
from hpprompt.tasks import textual_inversion as ti

SIZES = {
    "b32": dict(text=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                          num_attention_heads=8, hidden_act="quick_gelu"),
                vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, patch_size=32, hidden_act="quick_gelu"),
                projection_dim=512, name="ViT-B/32"),
    "h14": dict(text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                          num_attention_heads=16, hidden_act="gelu"),
                vision=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                            num_attention_heads=16, patch_size=14, hidden_act="gelu"),
                projection_dim=1024, name="ViT-H/14"),
}
WORDS = ("a photo of an astronaut cat coffee cup rocket launch red blue painting trending on "
         "artstation highly detailed portrait landscape city night sky sunset dog horse").split()


def _hf_config(size: str, vision: str | None = None):
  spec = SIZES[size]
  return transformers.CLIPConfig(
      text_config=dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=49406,
                       eos_token_id=49407, pad_token_id=0, projection_dim=spec["projection_dim"],
                       **spec["text"]),
      vision_config=dict(image_size=224, projection_dim=spec["projection_dim"],
                         **SIZES[vision or size]["vision"]),
      projection_dim=spec["projection_dim"])


def build(size: str, full_reference: bool):
  """(transformers model, our CLIP with the same weights).

  full_reference=False (ViT-H/14, ~4 GB a copy): transformers builds only the text tower
  (`CLIPTextModelWithProjection`, what the reward runs) and our CLIP gets a ViT-B/32 image tower
  (random), so both fit in the memory left on a shared 24 GB machine. The reward and the step do
  not depend on the image tower (each target is encoded once per run); the image column is then
  left out.
  """
  cfg = _hf_config(size)
  if not full_reference:
    cfg = _hf_config(size, vision="b32")
  torch.manual_seed(0)
  ours_cfg = clip.CLIPConfig.from_hf_config(cfg.to_dict())
  if full_reference:
    ref = transformers.CLIPModel(cfg).eval()
    tensors = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    ours = fill(lambda: clip.CLIP(ours_cfg, rngs=nnx.Rngs(0)), tensors, clip.CHECKPOINT_RULES,
                ignore=clip.IGNORED_KEYS)
  else:   # the same key names as CLIPModel's towers; no random init of our copy
    ref = transformers.CLIPTextModelWithProjection(cfg.text_config).eval()
    vision = transformers.CLIPVisionModelWithProjection(cfg.vision_config)
    tensors = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    tensors.update({k: v.detach().numpy() for k, v in vision.state_dict().items()})
    tensors["logit_scale"] = np.asarray(2.6592, np.float32)
    ours = fill(lambda: clip.CLIP(ours_cfg, rngs=nnx.Rngs(0)), tensors, clip.CHECKPOINT_RULES,
                ignore=clip.IGNORED_KEYS)
    del vision
  del tensors
  gc.collect()
  return ref, ours


def prompts(n: int, rng) -> list[str]:
  return [" ".join(rng.choice(WORDS, 8)) for _ in range(n)]


def torch_scores(ref, tok, texts, image_embed):
  ids, _ = clip_tokenizer.encode_for_clip(tok, texts, 77)
  kwargs = dict(input_ids=torch.from_numpy(ids.astype(np.int64)),
                attention_mask=torch.from_numpy((ids != 0).astype(np.int64)))
  with torch.no_grad():
    if hasattr(ref, "get_text_features"):
      feats = ref.get_text_features(**kwargs)
      feats = getattr(feats, "pooler_output", feats)
    else:   # CLIPTextModelWithProjection
      feats = ref(**kwargs).text_embeds
    feats = torch.nn.functional.normalize(feats, dim=-1).numpy()
  return feats @ image_embed.T


def torch_image(ref, pixels):
  if not hasattr(ref, "get_image_features"):
    return None
  with torch.no_grad():
    feats = ref.get_image_features(pixel_values=torch.from_numpy(pixels))
    feats = getattr(feats, "pooler_output", feats)
    return torch.nn.functional.normalize(feats, dim=-1).numpy()


def interleaved(fns: dict, repeats: int) -> dict:
  for fn in fns.values():   # compile / warm up
    fn()
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      t = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - t)
  return {k: statistics.median(v) for k, v in times.items()}


def reward_table(size, ref, scorer, image, batch, repeats, rng):
  texts = prompts(batch, rng)
  pixels = scorer.pixels(image)[None]
  target = scorer.image_embeds([image])
  np.testing.assert_allclose(scorer.scores(texts, target),
                             torch_scores(ref, scorer.tokenizer, texts, target), atol=2e-3)
  t = interleaved({"ours": lambda: scorer.scores(texts, target),
                   "torch": lambda: torch_scores(ref, scorer.tokenizer, texts, target)}, repeats)
  img = interleaved({"ours": lambda: scorer.image_embeds([image]),
                     "torch": lambda: torch_image(ref, pixels)}, max(1, repeats // 2))
  image_cols = (f"{img['ours'] * 1000:.0f} | {img['torch'] * 1000:.0f} | "
                f"{img['torch'] / img['ours']:.2f}x" if hasattr(ref, "get_image_features")
                else "- | - | -")
  print(f"| {SIZES[size]['name']} | {batch} | {batch / t['ours']:.1f} | {batch / t['torch']:.1f} "
        f"| {t['torch'] / t['ours']:.2f}x | {image_cols} |", flush=True)
  return target


def step_table(size, ref, scorer, target, policy, steps):
  lm, tok = policy
  cfg = get_preset("pin", prompt_length=8, prompts_per_step=32, filter_top_k=20_000,
                   replay_batch=64, replay_capacity=1024)
  agent = PromptAgent(lm, tok, cfg, source_token=hub.document_start("smollm2", tok))
  task = ti.TextualInversionTask(scorer, target[0])
  state = agent.init(0)
  parts = {"sample": [], "reward": [], "learn": [], "torch_reward": []}
  for i in range(steps + 2):                     # two warm-up steps: compilation, buffer fill
    t0 = time.perf_counter()
    state, rollout = agent.sample(state)
    texts = agent.decode(jax.block_until_ready(rollout.tokens))
    t1 = time.perf_counter()
    rewards = task.step_rewards(texts, i)
    t2 = time.perf_counter()
    state, _ = agent.learn(state, rollout, rewards.raw, shaped=rewards.shaped)
    jax.block_until_ready(state.train.params)
    t3 = time.perf_counter()
    torch_scores(ref, scorer.tokenizer, texts, target)
    t4 = time.perf_counter()
    if i >= 2:
      for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        parts[k].append(v)
  m = {k: statistics.median(v) for k, v in parts.items()}
  total = m["sample"] + m["reward"] + m["learn"]
  print(f"| {SIZES[size]['name']} | {m['sample']:.2f} | {m['reward']:.2f} | {m['learn']:.2f} | "
        f"{total:.2f} | {m['torch_reward']:.2f} | {m['torch_reward'] / m['reward']:.2f}x |",
        flush=True)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="b32,h14")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--text_only_reference", default="h14",
                      help="sizes whose transformers reference is the text tower only (memory)")
  parser.add_argument("--no_step", action="store_true", help="skip the training-step table")
  parser.add_argument("--torch_threads", type=int, default=None,
                      help="torch.set_num_threads (default: torch's; 1 avoids OpenMP spinning on "
                      "a loaded, shared CPU)")
  args = parser.parse_args()
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  sizes = args.sizes.split(",")
  batch, repeats, steps = (16, 3, 2) if args.quick else (32, 7, 3)
  rng = np.random.default_rng(0)
  image = ti.load_images(os.path.join(BUNDLED_IMAGES, "astronaut.jpg"))[0][1]
  policy = None if args.no_step else hub.load_pretrained("smollm2")
  print(f"torch threads {torch.get_num_threads()}, jax devices {jax.devices()}")
  for size in sizes:
    ref, ours = build(size, full_reference=size not in args.text_only_reference.split(","))
    scorer = ti.CLIPScorer(ours, clip_tokenizer.clip_tokenizer())
    print("\n| model | prompts | hpprompt prompts/s | transformers prompts/s | ratio | "
          "hpprompt image ms | transformers image ms | ratio |\n| --- | ---: | ---: | ---: | ---: "
          "| ---: | ---: | ---: |")
    target = reward_table(size, ref, scorer, image, batch, repeats, rng)
    if policy is not None:
      print("\n| model | sample (s) | reward (s) | learn (s) | step (s) | transformers reward (s) "
            "| ratio |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
      step_table(size, ref, scorer, target, policy, steps)
    del ref, ours, scorer
    gc.collect()


if __name__ == "__main__":
  main()
