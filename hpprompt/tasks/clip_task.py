"""Embedding-level CLIP inputs for PEZ's textual inversion: `[SOT] P_1..P_L [EOT]` with free P.

"Hard Prompts Made Easy", Wen et al. 2023 (baselines.md §2.2): the prompt's L vectors take the
token slots between <|startoftext|> and <|endoftext|>; the text feature is the final-LayerNorm state
at EOT (position L + 1) times the text projection, L2-normalised, and the loss is 1 - mean cosine
with the target images' normalised features (no logit scale). Positions past EOT never change the
pooled feature (causal attention), so the input is exactly L + 2 tokens long instead of 77.

`CLIPPromptTask` offers what `gradient.soft_prompt.SoftPrompt` reads from a task (model state,
graphdef, mesh, vocabulary table, tokenizer, `prompt_text`), so `gradient.pez.PEZ` runs on it as it
does on an `EmbeddingTask`: one PEZ, two task types.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax import struct

from hpprompt.models.clip import CLIP
from hpprompt.models.clip_tokenizer import EOT
from hpprompt.models.clip_tokenizer import SOT
from hpprompt.models.tokenizer import Tokenizer
from hpprompt.tasks.embedding_task import insert_prompt
from hpprompt.training import sharding

Array = jax.Array


@struct.dataclass
class ImageBatch:
  """The CLIP template for an L-token prompt and the target image features."""
  ids: Array        # [1, L + 2]: SOT, L placeholders, EOT
  slot: Array       # [1, L + 2]: j at the j-th prompt slot, -1 elsewhere
  eot: Array        # [1] EOT position (L + 1)
  targets: Array    # [N, P] L2-normalised image features

  @property
  def size(self) -> int:
    return self.targets.shape[0]


def prompt_features(model: CLIP, prompt: Array, batch: ImageBatch) -> Array:
  """[1, P] L2-normalised text features of the prompt vectors [L, D] in the CLIP template."""
  x = insert_prompt(model.embed(batch.ids), prompt, batch.slot)
  feats = model.text_features(inputs_embeds=x, eot_index=batch.eot).astype(jnp.float32)
  return feats / jnp.linalg.norm(feats, axis=-1, keepdims=True)


def cosine_loss(model: CLIP, prompt: Array, batch: ImageBatch) -> tuple[Array, Array]:
  """(1 - mean cosine, cosines [N]) of the prompt with every target (PEZ's CLIP loss)."""
  cos = (prompt_features(model, prompt, batch) @ batch.targets.T)[0]
  return 1.0 - cos.mean(), cos


class CLIPPromptTask:
  """A CLIP model and its tokenizer as PEZ's task (hard prompts matched to target images)."""
  verbalizers: tuple = ()

  def __init__(self, model: CLIP, tokenizer: Tokenizer, *, mesh=None):
    self.model, self.tokenizer = model, tokenizer
    self.mesh = mesh or sharding.make_mesh()
    self.graphdef, state = nnx.split(model)
    self.state = sharding.replicate(state, self.mesh)
    self.verbalizer_ids = jnp.zeros((0,), jnp.int32)
    self.sot, self.eot = tokenizer.token_to_id(SOT), tokenizer.token_to_id(EOT)
    self._embeddings = sharding.replicate(model.input_embedding(), self.mesh)

  @property
  def embeddings(self) -> Array:
    """[V, D] the token embedding table (PEZ's projection targets)."""
    return self._embeddings

  def batch(self, targets: np.ndarray, length: int) -> ImageBatch:
    ids = np.zeros((1, length + 2), np.int32)
    ids[0, 0], ids[0, -1] = self.sot, self.eot
    slot = np.full((1, length + 2), -1, np.int32)
    slot[0, 1:-1] = np.arange(length)
    batch = ImageBatch(jnp.asarray(ids), jnp.asarray(slot), jnp.asarray([length + 1], jnp.int32),
                       jnp.asarray(targets, jnp.float32))
    return sharding.replicate(batch, self.mesh)

  def prompt_text(self, ids) -> tuple[str, bool]:
    """(decoded prompt, whether it re-encodes to exactly `ids`)."""
    text = self.tokenizer.decode(ids)
    return text, [int(i) for i in self.tokenizer.encode(text)] == [int(i) for i in ids]
