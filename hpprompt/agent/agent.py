"""`PromptAgent`: the frozen policy LM and tokenizer bound to an `AgentConfig`.

It owns the jitted sampler and train step, turns token ids into prompt strings, and keeps RLPrompt's
on-policy learning and PIN's replay-buffer learning behind one `learn` call. All randomness comes from
the key inside the state, so a run is a function of its seed (and resumes exactly from a checkpoint).
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax import struct

from hpprompt import ops
from hpprompt.agent import learner
from hpprompt.agent import replay
from hpprompt.agent import policy
from hpprompt.agent import sampling
from hpprompt.agent import warm_start
from hpprompt.agent.config import AgentConfig
from hpprompt.models.tokenizer import Tokenizer
from hpprompt.training import sharding


@struct.dataclass
class AgentState:
  train: learner.TrainState
  buffer: replay.ReplayBuffer | None = None


def _allowed_tokens(tokenizer: Tokenizer, vocab: int, exclude_special: bool) -> np.ndarray:
  """Tokens the policy may emit: ids the tokenizer knows (OPT's head has padding rows), minus specials."""
  allowed = np.zeros(vocab, bool)
  allowed[:min(vocab, tokenizer.vocab_size)] = True
  if exclude_special:
    for i in tokenizer.special_ids():
      if i < vocab:
        allowed[i] = False
  return allowed


class InitPromptError(ValueError):
  """The starting prompt cannot be the policy's first greedy prompt (launchers: --init_prompt)."""
  flag = "init_prompt"


class PromptAgent:
  """RLPrompt / PIN prompt agent over a frozen causal LM."""

  def __init__(self, lm: nnx.Module, tokenizer: Tokenizer, cfg: AgentConfig, *,
               source_token: str | None = None, mesh: jax.sharding.Mesh | None = None):
    """
    Args:
      lm: frozen causal LM (`hpprompt.models.base.CausalLM`).
      tokenizer: its tokenizer.
      cfg: the algorithm.
      source_token: the token the prompt is generated after (RLPrompt '<|endoftext|>', PIN '</s>');
        default: the tokenizer's BOS, else its EOS.
      mesh: devices for the learner's batch (default: all).
    """
    self.cfg = cfg
    self.tokenizer = tokenizer
    self.mesh = mesh or sharding.make_mesh()
    _, lm_state = nnx.split(lm)
    self.lm_state = sharding.replicate(lm_state, self.mesh)
    self.w_lm = sharding.replicate(lm.output_embedding(), self.mesh)
    self.dim = self.w_lm.shape[1]
    if source_token is None:
      self.source_id = tokenizer.special_id("bos")
      if self.source_id is None:
        self.source_id = tokenizer.special_id("eos")
    else:
      self.source_id = tokenizer.token_to_id(source_token)
    if self.source_id is None:
      raise ValueError(f"source token {source_token!r} is not in the policy tokenizer's vocabulary.")
    self.allowed = sharding.replicate(jnp.asarray(_allowed_tokens(
        tokenizer, self.w_lm.shape[0], cfg.exclude_special_tokens)), self.mesh)
    if cfg.filter_top_k is not None and cfg.filter_top_k > int(self.allowed.sum()):
      raise ValueError(f"filter_top_k={cfg.filter_top_k} exceeds the {int(self.allowed.sum())} "
                       "tokens the policy may emit.")
    self._sample = sampling.make_sampler(lm, cfg=cfg, bos_id=self.source_id, allowed=self.allowed)
    self._train_step = learner.make_train_step(cfg)
    self.init_rollout = None if cfg.init_prompt is None else self._init_rollout(cfg.init_prompt)

  def _init_rollout(self, prompt: str) -> sampling.Rollout:
    """The starting prompt's trajectory (one row); InitPromptError if the policy cannot emit it."""
    ids = self.tokenizer.encode(prompt)
    if not ids or self.tokenizer.decode(ids) != prompt:
      back = self.tokenizer.decode(ids) if ids else ""
      raise InitPromptError(f"{prompt!r} does not tokenise back to itself with the policy "
                            f"tokenizer (it reads {back!r}); give a prompt it can spell.")
    if len(ids) != self.cfg.prompt_length:
      raise InitPromptError(f"{prompt!r} is {len(ids)} tokens of the policy tokenizer, but the "
                            f"prompt length is {self.cfg.prompt_length}; set --prompt_length="
                            f"{len(ids)}.")
    rollout = self._sample(self.lm_state, policy.init_head(jax.random.PRNGKey(0), self.dim, 1),
                           jax.random.PRNGKey(0), batch=1, forced=jnp.asarray([ids], jnp.int32))
    masks = self._masks(rollout)[0]
    for t, token in enumerate(ids):
      if not bool(masks[t, token]):
        where = ("a special or unknown token" if not bool(self.allowed[token]) else
                 f"outside the top-{self.cfg.filter_top_k} tokens of the frozen LM there "
                 "(raise the filter k, or 0 to disable it)")
        raise InitPromptError(f"token {self.tokenizer.decode([token])!r} at position {t + 1} of "
                              f"{prompt!r} is {where}, so the policy can never emit it.")
    return rollout

  def _masks(self, rollout: sampling.Rollout):
    thresholds = rollout.thresholds if self.cfg.filter_top_k else None
    return policy.action_mask(rollout.states, self.w_lm, thresholds, self.allowed)

  def warm_start(self, state: AgentState) -> tuple[AgentState, dict]:
    """The state with its head behaviour-cloned to the starting prompt (`warm_start`), the target
    head a copy of it and a fresh optimiser; InitPromptError if that fails."""
    rollout = self.init_rollout
    trajectory = (rollout.states[0], rollout.tokens[0], self._masks(rollout)[0], self.w_lm)
    params, steps = state.train.params, 0
    for rate in warm_start.LEARNING_RATES:
      params, taken, done = warm_start.warm_start(params, *trajectory, self.cfg,
                                                  learning_rate=rate)
      steps += int(taken)
      if bool(done):
        break
    _, probs = warm_start.cloned(params, *trajectory, self.cfg)
    if not bool(done):
      raise InitPromptError(f"{self.cfg.init_prompt!r}: the policy head did not become greedy on "
                            f"it within {int(steps)} behaviour-cloning steps.")
    train = state.train.replace(params=params, target_params=jax.tree.map(jnp.copy, params),
                                opt_state=learner.make_optimizer(self.cfg).init(params))
    return self.place(state.replace(train=train)), {
        "warm_start_steps": int(steps), "init_token_probs": [float(p) for p in probs]}

  def init(self, seed: int) -> AgentState:
    train = learner.init_state(jax.random.PRNGKey(seed), self.dim, self.cfg)
    buffer = None
    if self.cfg.replay:
      buffer = replay.ReplayBuffer.create(self.cfg.replay_capacity, self.cfg.prompt_length,
                                          self.dim)
    return self.place(AgentState(train=train, buffer=buffer))

  def place(self, state: AgentState) -> AgentState:
    """Replicates the state over the mesh (after init or a restore from a checkpoint)."""
    return sharding.replicate(state, self.mesh)

  def _split(self, state: AgentState, n: int) -> tuple[AgentState, list]:
    keys = jax.random.split(state.train.key, n + 1)
    return state.replace(train=state.train.replace(key=keys[0])), list(keys[1:])

  def sample(self, state: AgentState) -> tuple[AgentState, sampling.Rollout]:
    """A batch of `prompts_per_step` prompts from the behaviour policy."""
    state, (key,) = self._split(state, 1)
    return state, self._sample(self.lm_state, state.train.params, key,
                               batch=self.cfg.prompts_per_step)

  def greedy(self, state: AgentState) -> sampling.Rollout:
    """The greedy (argmax) prompt, as RLPrompt/PIN evaluate it."""
    return self._sample(self.lm_state, state.train.params, jax.random.PRNGKey(0), batch=1,
                        greedy=True)

  def decode(self, tokens) -> list[str]:
    """Prompt strings (RLPrompt: convert_ids_to_tokens + convert_tokens_to_string)."""
    return [self.tokenizer.decode(row) for row in np.asarray(tokens)]

  def _shard(self, batch: learner.Batch) -> learner.Batch:
    if batch.rewards.shape[0] % self.mesh.devices.size:
      return sharding.replicate(batch, self.mesh)
    return sharding.shard(batch, self.mesh)

  def learn(self, state: AgentState, rollout: sampling.Rollout, raw_rewards, *,
            groups=None, shaped=None) -> tuple[AgentState, dict]:
    """Shapes the rewards, then one update: on the rollout, or on a replay batch (PIN).

    `groups`: z-score within these groups (e.g. source sentences) instead of over all prompts.
    `shaped`: rewards the task normalised itself; only the rescale is applied to them.
    """
    if shaped is not None:
      shaped = ops.rescale(jnp.asarray(shaped, jnp.float32), *self.cfg.reward_old_range,
                           *self.cfg.reward_new_range)
    else:
      shaped = learner.shape_rewards(jnp.asarray(raw_rewards), self.cfg, groups)
    batch = learner.Batch(rollout.tokens, rollout.states, rollout.thresholds, shaped)
    metrics = {"shaped_reward": float(shaped.mean())}
    if self.cfg.replay:
      buffer = replay.add(state.buffer, batch)
      state = state.replace(buffer=buffer)
      if int(buffer.size) < self.cfg.replay_batch:
        return state, {**metrics, "buffer": int(buffer.size)}
      state, (key,) = self._split(state, 1)
      batch = replay.sample(buffer, key, self.cfg.replay_batch)
      metrics["buffer"] = int(buffer.size)
    train, step_metrics = self._train_step(state.train, self._shard(batch), self.w_lm,
                                           self.allowed)
    metrics.update({k: float(v) for k, v in step_metrics.items()})
    return state.replace(train=train), metrics


def describe(cfg: AgentConfig) -> dict:
  return dataclasses.asdict(cfg)
