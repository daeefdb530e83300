"""The textual-inversion reward, PEZ's CLIP inputs and image loading, on a tiny trained CLIP."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.gradient import pez
from hpprompt.models import clip_loader
from hpprompt.models import clip_tokenizer
from hpprompt.tasks import clip_task
from hpprompt.tasks import textual_inversion as ti
from hpprompt.tasks.base import PromptTask
from tests.textual_inversion.conftest import PAIRS

torch = pytest.importorskip("torch")
RANDOM_TEXTS = ["a photo of a dog", "hello world", "the quick brown fox jumps", "zebra piano",
                "!!", "pattern colour", "purple circles", "an astronaut riding a horse"]


@pytest.fixture(scope="module")
def scorer(trained_clip):
  model, tokenizer, preprocess = clip_loader.load_clip(trained_clip[0])
  return ti.CLIPScorer(model, tokenizer, preprocess=preprocess, chunk_size=5)


@pytest.fixture(scope="module")
def targets(trained_clip, scorer):
  images = ti.load_images(trained_clip[1])
  return images, scorer.image_embeds([im for _, im in images])


def test_reward_matches_torch_clip_and_ranks_the_generating_caption(trained_clip, scorer, targets):
  images, embeds = targets
  captions = {name: trained_clip[2][name] for name, _ in images}
  prompts = [f"{c} {p}" for c, p in PAIRS] + RANDOM_TEXTS
  ours = scorer.scores(prompts, embeds)                       # [B, N]
  # Reference: transformers' CLIPModel on the same weights, its own features, cosine in NumPy.
  model = trained_clip[3]
  ids, _ = clip_tokenizer.encode_for_clip(scorer.tokenizer, prompts, 16)
  pixels = np.stack([scorer.pixels(im) for _, im in images])
  with torch.no_grad():
    text = model.get_text_features(input_ids=torch.from_numpy(ids.astype(np.int64)),
                                   attention_mask=torch.from_numpy((ids != 0).astype(np.int64)))
    image = model.get_image_features(pixel_values=torch.from_numpy(pixels))
  text = getattr(text, "pooler_output", text).numpy()
  image = getattr(image, "pooler_output", image).numpy()
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
  np.testing.assert_allclose(ours, unit(text) @ unit(image).T, atol=1e-4)
  for j, (name, _) in enumerate(images):
    own = prompts.index(captions[name])
    assert ours[own, j] > ours[len(PAIRS):, j].max() + 0.1, name     # above every random text
    assert int(np.argmax(ours[:, j])) == own, name


def test_text_embeds_do_not_depend_on_chunks_or_padding(scorer):
  prompts = ["red stripes", "a much longer prompt " * 6, "blue", "", "yellow frame dots", "x y"]
  chunked = scorer.text_embeds(prompts)               # chunk_size 5: two chunks, two widths
  whole = ti.CLIPScorer(scorer.model, scorer.tokenizer, chunk_size=64).text_embeds(prompts)
  single = np.concatenate([scorer.text_embeds([p]) for p in prompts])
  np.testing.assert_allclose(chunked, whole, atol=1e-5)
  np.testing.assert_allclose(chunked, single, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(chunked, axis=-1), 1.0, atol=1e-5)


def test_task_interface(scorer, targets):
  _, embeds = targets
  task = ti.TextualInversionTask(scorer, embeds[0], "t0")
  assert isinstance(task, PromptTask)
  prompts = ["red stripes", "blue cross", "hello"]
  out = task.step_rewards(prompts, step=3)
  np.testing.assert_allclose(out.raw, scorer.scores(prompts, embeds[:1])[:, 0], atol=1e-6)
  np.testing.assert_array_equal(out.shaped, out.raw)      # no z-score: the agent only rescales
  assert out.groups is None and out.metrics["clip_score_max"] == pytest.approx(out.raw.max())
  np.testing.assert_allclose(task.validate(prompts), out.raw, atol=1e-6)
  assert task.evaluate("x") == {} and task.memo_state() == {}


def test_pez_clip_inputs_equal_the_string_path(scorer, targets):
  """PEZ's [SOT] P [EOT] embedding input with P = E[ids of a caption] gives the caption's features,
  and its loss at the projected prompt is 1 - cosine of the decoded string."""
  _, embeds = targets
  task = clip_task.CLIPPromptTask(scorer.model, scorer.tokenizer)
  ids = scorer.tokenizer.encode("green dots")
  batch = task.batch(embeds, len(ids))
  feats = clip_task.prompt_features(scorer.model, task.embeddings[jnp.asarray(ids)], batch)
  np.testing.assert_allclose(np.asarray(feats)[0], scorer.text_embeds(["green dots"])[0],
                             atol=1e-5)
  method = pez.PEZ(task, pez.PEZConfig(prompt_length=len(ids), init="vocab", round_trip_vocab=False,
                                       population=scorer.tokenizer.vocab_size))
  state = method.init(0)
  params = {"prompt": task.embeddings[jnp.asarray(ids)] + 0.01}   # projects back onto ids
  np.testing.assert_array_equal(method.ids(params), ids)
  value, aux = pez.clip_loss(params, batch, method.frozen, jax.random.PRNGKey(0),
                             graphdef=task.graphdef)
  want = scorer.scores(["green dots"], embeds)[0]
  assert float(value) == pytest.approx(1 - want.mean(), abs=1e-5)
  np.testing.assert_allclose(method.logits(params, batch), want, atol=1e-5)
  # Uniform initialisation over the whole vocabulary (PEZ's CLIP code), then steps lower the loss.
  assert method.cfg.population == 49408
  losses = []
  for _ in range(8):
    state, metrics = method.train_step(state, batch)
    losses.append(float(metrics["loss"]))
    assert "train_acc" not in metrics
  assert np.isfinite(losses).all() and min(losses[1:]) < losses[0]


def test_load_images_sources_and_errors(tmp_path, trained_clip):
  from PIL import Image
  rgba = tmp_path / "a.png"
  Image.fromarray(np.zeros((5, 7, 4), np.uint8)).save(rgba)
  gray = tmp_path / "b.jpg"
  Image.fromarray(np.full((6, 4), 200, np.uint8)).save(gray)
  images = ti.load_images(f"{rgba}, {gray}")
  assert [im.shape for _, im in images] == [(5, 7, 3), (6, 4, 3)]
  assert [n for n, _ in ti.load_images(str(tmp_path))] == [str(rgba), str(gray)]
  (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
  (tmp_path / "notes.txt").write_text("hello")
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "readme.md").write_text("x")
  cases = [(str(tmp_path / "broken.jpg"), "broken.jpg: not a readable image"),
           (str(tmp_path / "notes.txt"), "notes.txt: not a readable image"),
           (str(empty), "empty: no image files"),
           (str(tmp_path / "missing.png"), "missing.png: no such file"),
           ("http://127.0.0.1:9/cat.png", "127.0.0.1:9/cat.png: could not download"),
           (" , ", "no image given")]
  for spec, message in cases:
    with pytest.raises(ti.ImageError, match=message) as info:
      ti.load_images(spec, timeout=5)
    assert "\n" not in str(info.value)
