"""InfoPrompt: soft prompt tuning with two mutual-information losses.

"InfoPrompt: Information-Theoretic Soft Prompt Tuning for Natural Language Understanding", Wu, Yu,
Wang, Song, Zhang, Zhao, Lu, Li, Henao, NeurIPS 2023 (https://arxiv.org/abs/2306.04933). The paper's
equations could not be read. The losses below are those of the released code
(JoshuaWu1997/infoprompt @ cc56fba, `model/RoBertaPrompt.py`), as baselines.md §1.3 transcribes
them. d is the dimension of the dot products, h = the LM's hidden state at the read position with
the prompt, h0 = the same without it:

  head loss  L_head = gamma * mean_b InfoNCE(s+ = <mean_j P_j, v_bar>, s-_t = <E[x0_t], v_bar>)
             v_bar = mean_c v_c (head rows), x0 = the prompt-free ("null") input, no padding;
  rep. loss  L_rep  = beta * mean_b InfoNCE(s+ = <u(z+), c>, s-_k = <u(z-_k), c>), k = 1..K (K = 4B)
             z+ ~ N(mu(h), sigma(h)^2), z-_k ~ N(mu(h0), sigma(h0)^2) (same example, no prompt),
             c = mean_j (W_c stopgrad(P_j) + b_c), u(z) = W_o z + b_o;
  KL         L_KL = mean KL(N(mu, sigma^2) || N(0, I)) over the prompted + the prompt-free pass;
  total      L = L_task + aux_weight * (L_head + L_rep + kl_weight * L_KL)   (variational head)
             L = L_task + aux_weight * (L_head + L_rep)                      (LM-head default),

with InfoNCE = -max(log softmax([s+, s-] / sqrt(d))[0], floor) (`hpprompt.ops.info_nce`, floor -2 as
in the code, or none), mu(h) = A_mu h + a, log sigma(h) = clip(A_s h + b, -2, 10), gamma 0.1, beta
0.2, kl_weight 0.1, latent size 32, aux_weight 1 (the code's `decay` = 0).

Note on the floor: with K = 4B negatives the positive's log-probability starts near -log(K + 1),
below -2, so the floored representation loss sits at 2 * beta and gives no gradient from the first
step (seen with SmolLM2 on SST-2: L_rep = 0.4 throughout, and L_head at its floor for most
examples). The prompt then gets its extra gradient only from the KL term. `logp_floor=None` removes
the floor.

Defaults and options (baselines.md §1.5):
  * Default: one shared Lester soft prompt P [L, D], and class logits from the frozen LM's own
    verbalizer rows. Then v_c are those (frozen) rows, and the Gaussian bottleneck (mu, sigma, u)
    only serves as the representation-loss critic. The KL term is then left out: in the released
    code it regularises the bottleneck that classifies, and with the LM head classifying it would
    only pull the prompted state's mu(h) towards 0 (it is still reported as `kl`).
  * `variational_head`: the code's classifier, logit_c = <u(z), v_c>, with z sampled when training
    and z = mu when evaluating. v_c is trainable, initialised to the verbalizer rows. The KL term
    acts.
  * The released optimiser (AdamW lr 1e-3, weight decay 0.01, 6% linear warm-up then linear decay,
    batch 8): `warmup_fraction=0.06, linear_decay=True` (`soft_prompt.make_optimizer`), which
    `--paper` sets with the released architecture (`--prompt_generator --variational_head`).
  * `prompt_generator`: the code's instance-dependent prompt, P(x) = W2 gelu(W1 stopgrad(h0_sum) +
    b1) + b2. h0_sum is the prompt-free hidden state at position 0 (masked LMs, as the code) or at
    the last token (causal LMs: position 0 sees no input).

Defects of the released code, and what is done here instead:
  * n_prompt = 1 vector but 4 <ppt> slots (IndexError after one slot): here the template's one
    {prompt} slot holds all L vectors.
  * `prompts_embeds[0, counter]` gave every example example 0's prompt: here the generator's prompt
    is per example.
  * `cfg.task == ['mrpc', 'qqp']` compared a str with a list, so every task used one head-id
    pair: here the head rows are always the task's own verbalizers.
  * `params.batch_test` was undefined and there was no evaluation: here the launcher validates
    every `eval_every` steps, keeps the best prompt and tests it at the end.
  * Padding negatives were pushed down by -100: `info_nce` leaves them out exactly.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from hpprompt import ops
from hpprompt.gradient import soft_prompt
from hpprompt.gradient.soft_prompt import Frozen
from hpprompt.tasks import embedding_task
from hpprompt.tasks.embedding_task import PromptBatch
from hpprompt.tasks.scoring import verbalizer_logits

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class InfoPromptConfig(soft_prompt.SoftPromptConfig):
  gamma: float = 0.1                    # head-loss weight
  beta: float = 0.2                     # representation-loss weight
  kl_weight: float = 0.1
  aux_weight: float = 1.0               # the code's (1 - decay * (epoch + 1) / epochs), decay 0
  logp_floor: float | None = -2.0       # per-example log-prob floor of both InfoNCE terms
  temperature: float | None = None      # None: sqrt(d)
  num_latent: int = 32                  # bottleneck (and generator) width m
  num_negatives: int | None = None      # None: 4 x batch, as the code
  variational_head: bool = False
  prompt_generator: bool = False

  def problems(self) -> list[tuple[str, str]]:
    out = super().problems()
    for name in ("gamma", "beta", "kl_weight", "aux_weight"):
      if getattr(self, name) < 0:
        out.append((name, f"must be >= 0, got {getattr(self, name)}."))
    for name in ("temperature", "num_negatives"):
      value = getattr(self, name)
      if value is not None and not value > 0:
        out.append((name, f"must be > 0, got {value}."))
    if self.num_latent < 1:
      out.append(("num_latent", f"must be >= 1, got {self.num_latent}."))
    if self.logp_floor is not None and self.logp_floor >= 0:
      out.append(("logp_floor", f"must be < 0 (a log-probability), got {self.logp_floor}."))
    return out


# ---- the two MI losses and their pieces (pure) ---------------------------------------------------

def linear(p: dict, x: Array) -> Array:
  return x @ p["w"] + p["b"]


def init_linear(key: Array, fan_in: int, fan_out: int) -> dict:
  """PyTorch nn.Linear's default: w, b ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
  kw, kb = jax.random.split(key)
  bound = 1.0 / fan_in ** 0.5
  return {"w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
          "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound)}


def gaussian(bottleneck: dict, h: Array) -> tuple[Array, Array]:
  """(mu, log sigma) of the variational bottleneck; log sigma clipped to [-2, 10] as the code."""
  return linear(bottleneck["mu"], h), jnp.clip(linear(bottleneck["log_sigma"], h), -2.0, 10.0)


@jax.jit
def gaussian_kl(mu: Array, log_sigma: Array) -> Array:
  """mean(-log sigma + sigma^2 / 2 + mu^2 / 2 - 1/2): KL(N(mu, sigma^2) || N(0, I)) per dim."""
  return jnp.mean(-log_sigma + jnp.exp(2 * log_sigma) / 2 + mu ** 2 / 2 - 0.5)


def head_scores(prompt: Array, head_rows: Array, input_embeds: Array) -> tuple[Array, Array]:
  """Critic scores of the head loss (before the temperature).

  Args:
    prompt: [L, D] shared or [B, L, D] per example.
    head_rows: class head rows v_c [C, D].
    input_embeds: token embeddings of the prompt-free inputs E[x0_t], [B, T, D].

  Returns:
    (s+ [B] = <mean_j P_j, v_bar>, s- [B, T] = <E[x0_t], v_bar>), v_bar = mean_c v_c.
  """
  v_bar = head_rows.mean(0)
  pos = prompt.mean(-2) @ v_bar
  return jnp.broadcast_to(pos, input_embeds.shape[:1]), input_embeds @ v_bar


def rep_scores(z_pos: Array, z_neg: Array, decoder: dict, context: Array) -> tuple[Array, Array]:
  """Critic scores of the representation loss: (<u(z+), c> [B], <u(z-_k), c> [B, K])."""
  pos = jnp.einsum("bd,bd->b", linear(decoder, z_pos), context)
  neg = jnp.einsum("bkd,bd->bk", linear(decoder, z_neg), context)
  return pos, neg


def _info_nce_mean(pos, neg, mask, temperature, logp_floor):
  fn = functools.partial(ops.info_nce, temperature=temperature, logp_floor=logp_floor)
  if mask is None:
    return jax.vmap(fn)(pos, neg).mean()
  return jax.vmap(fn)(pos, neg, mask).mean()


@functools.partial(jax.jit, static_argnames=("gamma", "temperature", "logp_floor"))
def head_loss(prompt: Array, head_rows: Array, input_embeds: Array, input_mask: Array, *,
              gamma: float = 0.1, temperature: float | None = None,
              logp_floor: float | None = -2.0) -> Array:
  """gamma * mean_b InfoNCE(prompt vs the inputs' own tokens, scored against the class head).

  InfoPrompt's `promptHead_loss`: temperature sqrt(D) unless given; padding (mask False) excluded.
  """
  pos, neg = head_scores(prompt, head_rows, input_embeds)
  t = temperature or prompt.shape[-1] ** 0.5
  return gamma * _info_nce_mean(pos, neg, input_mask.astype(bool), t, logp_floor)


@functools.partial(jax.jit, static_argnames=("beta", "temperature", "logp_floor"))
def representation_loss(z_pos: Array, z_neg: Array, decoder: dict, context: Array, *,
                        beta: float = 0.2, temperature: float | None = None,
                        logp_floor: float | None = -2.0) -> Array:
  """beta * mean_b InfoNCE(prompted latent vs K prompt-free latents of the same input).

  InfoPrompt's `bottleneck_nce`: z_pos [B, m], z_neg [B, K, m], decoder u = {'w' [m, d], 'b' [d]},
  context c [B, d]; temperature sqrt(d) unless given.
  """
  pos, neg = rep_scores(z_pos, z_neg, decoder, context)
  t = temperature or context.shape[-1] ** 0.5
  return beta * _info_nce_mean(pos, neg, None, t, logp_floor)


# ---- the model-level loss ------------------------------------------------------------------------

def prompt_of(params: dict, batch: PromptBatch) -> Array:
  """The shared prompt [L, D], or the generator's per-example prompts [B, L, D]."""
  if "generator" not in params:
    return params["prompt"]
  g = params["generator"]
  h = jax.lax.stop_gradient(batch.null_summary).astype(jnp.float32)
  flat = linear(g["out"], jax.nn.gelu(linear(g["in"], h), approximate=False))
  return flat.reshape(h.shape[0], -1, params["context"]["w"].shape[0])


def _head_rows(params: dict, model, frozen: Frozen) -> Array:
  if "classes" in params:
    return params["classes"]
  return jax.lax.stop_gradient(model.output_embedding()[frozen.verbalizer_ids]).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg"))
def loss(params: dict, batch: PromptBatch, frozen: Frozen, key: Array, *, graphdef: nnx.GraphDef,
         cfg: InfoPromptConfig) -> tuple[Array, dict]:
  """Total InfoPrompt loss of a batch (needs `batch.null_*`); aux has logits and every term."""
  model = nnx.merge(graphdef, frozen.lm_state)
  prompt = prompt_of(params, batch)
  h = embedding_task.read_hidden(model, prompt, batch).astype(jnp.float32)        # [B, D]
  h0 = batch.null_hidden.astype(jnp.float32)
  k_task, k_pos, k_neg = jax.random.split(key, 3)
  bottleneck = params["bottleneck"]
  mu, log_sigma = gaussian(bottleneck, h)
  mu0, log_sigma0 = gaussian(bottleneck, h0)
  if cfg.variational_head:
    z = mu + jnp.exp(log_sigma) * jax.random.normal(k_task, mu.shape)
    logits = linear(bottleneck["out"], z) @ params["classes"].T
  else:
    logits = verbalizer_logits(model, h, frozen.verbalizer_ids).astype(jnp.float32)
  task_loss = soft_prompt.cross_entropy(logits, batch.labels)
  null_embeds = model.embed(batch.null_ids).astype(jnp.float32)
  l_head = head_loss(prompt, _head_rows(params, model, frozen), null_embeds, batch.null_mask,
                     gamma=cfg.gamma, temperature=cfg.temperature, logp_floor=cfg.logp_floor)
  context = linear(params["context"], jax.lax.stop_gradient(prompt)).mean(-2)
  context = jnp.broadcast_to(context, h.shape[:1] + context.shape[-1:])
  b, m = mu.shape
  k = cfg.num_negatives or 4 * b
  z_pos = mu + jnp.exp(log_sigma) * jax.random.normal(k_pos, (b, m))
  z_neg = mu0[:, None] + jnp.exp(log_sigma0)[:, None] * jax.random.normal(k_neg, (b, k, m))
  l_rep = representation_loss(z_pos, z_neg, bottleneck["out"], context, beta=cfg.beta,
                              temperature=cfg.temperature, logp_floor=cfg.logp_floor)
  l_kl = gaussian_kl(mu, log_sigma) + gaussian_kl(mu0, log_sigma0)
  kl_term = cfg.kl_weight * l_kl if cfg.variational_head else 0.0   # only on the classifier
  total = task_loss + cfg.aux_weight * (l_head + l_rep + kl_term)
  return total, {"logits": logits, "task_loss": task_loss, "head_loss": l_head, "rep_loss": l_rep,
                 "kl": l_kl}


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg"))
def eval_logits(params: dict, batch: PromptBatch, frozen: Frozen, *, graphdef: nnx.GraphDef,
                cfg: InfoPromptConfig) -> Array:
  """Eval-mode class logits: the LM's verbalizers, or the variational head at z = mu."""
  model = nnx.merge(graphdef, frozen.lm_state)
  h = embedding_task.read_hidden(model, prompt_of(params, batch), batch).astype(jnp.float32)
  if cfg.variational_head:
    mu = linear(params["bottleneck"]["mu"], h)
    return linear(params["bottleneck"]["out"], mu) @ params["classes"].T
  return verbalizer_logits(model, h, frozen.verbalizer_ids).astype(jnp.float32)


class InfoPrompt(soft_prompt.SoftPrompt):
  """Soft prompt (or prompt generator) + head loss + representation loss (+ variational head)."""
  name = "infoprompt"
  config_class = InfoPromptConfig
  needs_null = True

  @property
  def eval_needs_null(self) -> bool:
    return self.cfg.prompt_generator

  def loss_fn(self):
    return loss

  def logits_fn(self):
    return eval_logits

  def static_kwargs(self) -> dict:
    return {"graphdef": self.task.graphdef, "cfg": self.cfg}

  def init_params(self, key: Array) -> dict:
    cfg, d_in = self.cfg, self.task.dim
    d_out = self.task.model.output_embedding().shape[1]
    keys = jax.random.split(key, 7)
    params = {"bottleneck": {"mu": init_linear(keys[0], d_out, cfg.num_latent),
                             "log_sigma": init_linear(keys[1], d_out, cfg.num_latent),
                             "out": init_linear(keys[2], cfg.num_latent, d_out)},
              "context": init_linear(keys[3], d_in, d_out)}
    if cfg.prompt_generator:
      params["generator"] = {"in": init_linear(keys[4], d_out, cfg.num_latent),
                             "out": init_linear(keys[5], cfg.num_latent,
                                                cfg.prompt_length * d_in)}
    else:
      params["prompt"] = self.init_prompt(keys[6])
    if cfg.variational_head:
      rows = self.task.model.output_embedding()[self.task.verbalizer_ids]
      params["classes"] = jnp.asarray(rows, jnp.float32)
    return params

  def describe(self, params: dict) -> str:
    if "prompt" not in params:
      return f"<generator: input-dependent prompts of {self.cfg.prompt_length} vectors>"
    return super().describe(params)
