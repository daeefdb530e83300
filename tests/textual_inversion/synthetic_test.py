"""Issue 21's ground-truth CLIP: synthetic shapes, the contrastive loss, the OpenCLIP export, and a
reduced end-to-end run (a briefly trained CLIP retrieves captions well above chance, and PEZ
names the held-out images' colours well above chance)."""
import numpy as np
import pytest
from scipy.special import logsumexp

from hpprompt.gradient import pez
from hpprompt.launch import synthetic_clip
from hpprompt.models import clip_loader
from hpprompt.models import clip_tokenizer
from hpprompt.models import train_clip
from hpprompt.tasks import synthetic_shapes as shapes
from hpprompt.tasks import textual_inversion as ti
from hpprompt.tasks.clip_task import CLIPPromptTask


def test_renders_are_deterministic_and_splits_differ():
  a = shapes.make_split(12, seed=3)
  b = shapes.make_split(12, seed=3)
  np.testing.assert_array_equal(a.images, b.images)
  assert a.attributes == b.attributes
  assert a.images.shape == (12, 32, 32, 3) and a.images.dtype == np.uint8
  held = shapes.make_split(12, seed=3, split="heldout")
  assert not np.array_equal(held.images, a.images)
  other = shapes.make_split(12, seed=4)
  assert not np.array_equal(other.images, a.images)
  # Two renders of the same attributes differ (jitter), and colour / background show in pixels.
  attrs = shapes.Attributes("red", "circle", "white", "left")
  one = shapes.render(attrs, 32, np.random.default_rng(0))
  two = shapes.render(attrs, 32, np.random.default_rng(1))
  assert not np.array_equal(one, two)
  assert one[0, 0].min() > 200                     # white corner
  left, right = one[:, :16].astype(int), one[:, 16:].astype(int)
  redness = lambda x: (x[..., 0] - x[..., 1] > 100).sum()
  assert redness(left) > 20 and redness(right) < redness(left) // 4


def test_every_combination_cycles_through_a_split():
  n = len(shapes.all_attributes())
  assert n == 6 * 5 * 3 * 4
  split = shapes.make_split(n + 3, seed=0, size=8)
  assert set(split.attributes[:n]) == set(shapes.all_attributes())


def test_captions_name_their_attributes():
  for attrs in shapes.all_attributes():
    for j, template in enumerate(shapes.TEMPLATES):
      named = shapes.named_attributes(attrs.caption(j))
      for a in shapes.ATTRIBUTES:
        expected = {getattr(attrs, a)} if "{" + a + "}" in template else set()
        assert named[a] == expected, (attrs, template)
    assert all(shapes.recovered(attrs.caption(0), attrs).values())
  truth = shapes.Attributes("red", "circle", "white", "left")
  got = shapes.recovered("Red CIRCLE blue", truth)
  assert not got["colour"] and got["shape"] and not got["both"]      # two colours named
  assert shapes.recovered("reddish circles", truth) == dict.fromkeys(
      (*shapes.ATTRIBUTES, "both"), False)                           # whole words only
  assert shapes.chance("colour") == 1 / 6 and shapes.chance("shape") == 1 / 5


def _reference_loss(image, text, scale):
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  logits = np.exp(scale) * unit(image) @ unit(text).T
  ce = lambda z: np.mean(logsumexp(z, axis=1) - np.diag(z))
  return 0.5 * (ce(logits) + ce(logits.T))


def test_contrastive_loss_matches_numpy():
  rng = np.random.default_rng(0)
  image, text = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
  for scale in (0.0, 1.3, np.log(100.0)):
    got = float(train_clip.contrastive_loss(image, text, scale))
    np.testing.assert_allclose(got, _reference_loss(image, text, scale), rtol=1e-5)
  # Matched pairs and a large scale: the loss goes to 0; swapping the pairs raises it.
  assert float(train_clip.contrastive_loss(image, image, 5.0)) < 0.05
  assert float(train_clip.contrastive_loss(image, image[::-1], 5.0)) > 1.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A synthetic CLIP trained for a few seconds, saved, and loaded back through the loader."""
  out = tmp_path_factory.mktemp("synthetic_clip")
  cfg = synthetic_clip.SyntheticCLIPConfig(
      out=str(out), train_images=480, heldout_images=72, width=32, layers=1, heads=2,
      context_length=16, steps=120, batch_size=96, learning_rate=5e-3, eval_every=120)
  results = synthetic_clip.run(cfg, log=lambda *a: None)
  return cfg, results


def test_saved_clip_round_trips_through_the_openclip_loader(tiny_run):
  cfg, results = tiny_run
  model, tokenizer, preprocess = clip_loader.load_clip(results["clip_dir"])
  assert model.config.text.vocab_size == 49408 and model.config.vision.image_size == 32
  # The loaded model's retrieval equals the one measured at the end of training.
  held = synthetic_clip.heldout(synthetic_clip.read_settings(results["clip_dir"]))
  candidates = shapes.all_attributes()
  ids, eot = clip_tokenizer.encode_for_clip(tokenizer, [a.caption(0) for a in candidates],
                                            cfg.context_length)
  px = train_clip.pixels(held.images, {"size": 32}, 32)
  got = synthetic_clip.retrieval(model, px, held.attributes, candidates, ids, eot)
  assert got["retrieval_top1"] == pytest.approx(results["final"]["retrieval_top1"])
  # The textual-inversion scorer (loader preprocessing) sees the same image features.
  scorer = ti.CLIPScorer(model, tokenizer, preprocess=preprocess)
  ours, _ = train_clip.embeds(model, px[:4], ids[:1], eot[:1])
  np.testing.assert_allclose(scorer.image_embeds(list(held.images[:4])), ours, atol=1e-5)
  # Tokens outside the captions are zero rows; caption tokens are not.
  table = np.asarray(model.input_embedding())
  used = np.abs(table).sum(1) > 0
  assert used.sum() == results["caption_tokens"]
  assert used[tokenizer.encode("red circle")].all()
  # And exporting the loaded model again gives the same tensors.
  first = train_clip.open_clip_state(model)
  again = clip_loader.load_clip(train_clip.save_open_clip(
      model, cfg.out + "/again", {"size": 32}))[0]
  for k, v in train_clip.open_clip_state(again).items():
    np.testing.assert_array_equal(v, first[k])


def test_end_to_end_retrieval_and_pez_recovery(tiny_run):
  cfg, results = tiny_run
  final = results["final"]
  assert final["retrieval_top1"] > 8 * final["retrieval_chance"], final
  assert final["retrieval_colour"] > 0.8, final
  model, tokenizer, _ = clip_loader.load_clip(results["clip_dir"])
  scorer = ti.CLIPScorer(model, tokenizer)
  held = synthetic_clip.heldout(synthetic_clip.read_settings(results["clip_dir"]), 8)
  targets = scorer.image_embeds(list(held.images))
  task = CLIPPromptTask(model, tokenizer)
  method = pez.PEZ(task, pez.PEZConfig(prompt_length=2, learning_rate=0.1, weight_decay=0.1,
                                       init="uniform", grad_clip=float("inf")))
  named, precision = [], []
  for target, attrs in zip(targets, held.attributes):
    batch = task.batch(target[None], 2)
    state = method.init(0)
    for _ in range(40):
      state, _ = method.train_step(state, batch)
    colours = shapes.named_attributes(method.hard_prompt(state.params)["prompt"])["colour"]
    named.append(attrs.colour in colours)
    precision.append((attrs.colour in colours) / max(len(colours), 1))
  # This briefly trained CLIP (measured: held-out top-1 0.042, 15x chance) makes 2-token PEZ
  # prompts name the image's colour, sometimes beside a second one (measured on these 8 targets,
  # PEZ seeds 0 / 1 / 2: named 0.75 / 1.0 / 0.88, precision 0.69 / 1.0 / 0.81): the share of named
  # colour words that are right is well above a random colour word's 1/6.
  assert np.mean(named) >= 0.5, named
  assert np.mean(precision) >= 0.35, precision
