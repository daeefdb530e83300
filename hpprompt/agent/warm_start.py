"""Warm start from a known prompt: behaviour cloning of the Q-head toward the prompt's tokens.

The starting prompt a_0..a_{L-1} is replayed through the frozen LM (`sampling.rollout(forced=...)`),
which gives its states e_t and action masks M_t (allowed tokens, PIN's top-k filter). The head is
then trained by Adam (`LEARNING_RATE`) on the behaviour-cloning loss, the negative log-likelihood
of the prompt's tokens under the softmax of the masked Q-values, over the steps t not yet cloned
(w_t = 1 until step t meets the criterion below, then 0, so that no step is pushed past it),

  L(theta) = 1/L sum_t [-w_t log softmax(Q_theta(s_t, .)/alpha restricted to M_t)[a_t]
                        + Q_theta(s_t, a_t)^2],

the second term holding the prompt's Q-values at 0, where the head starts and where the shaped
rewards (z-scores) are centred: the cross-entropy alone is blind to a common shift of the Q-values,
which lets them drift far above the rewards (Q ~ 12 on SmolLM2), and the first TD/Monte-Carlo
update then tears the warm start apart. Training stops as soon as
at every step t the token a_t is the strict argmax of the masked Q_t (so the first greedy
prompt is the starting prompt) and the run's behaviour policy (sparsemax for PIN, top-k softmax for
RLPrompt: `sampling._sampling_logp`) samples it with probability >= `init_prob` (so the agent keeps
exploring around it), or `MAX_STEPS` pass (then `done` is False; the agent continues from there
with the next of `LEARNING_RATES`: 1e-4 stops close to `init_prob` on SmolLM2, a tiny random LM
needs larger steps). The warm-up is deterministic: a
function of the head, the trajectory and the settings only.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import optax

from hpprompt.agent import policy
from hpprompt.agent import sampling
from hpprompt.agent.config import AgentConfig

Array = chex.Array
LEARNING_RATE = 1e-4
LEARNING_RATES = (1e-4, 1e-3, 1e-2)   # `PromptAgent.warm_start` escalates when one falls short
MAX_STEPS = 1000


def bc_loss(params: policy.HeadParams, states: Array, tokens: Array, masks: Array, w_lm: Array,
            weights: Array, temperature: float, logit_bias: float = 0.0) -> Array:
  """(1/L) sum_t [weights_t * -log softmax(Q_t / alpha over mask_t)[a_t] + Q_t[a_t]^2]; states
  [L, D], tokens [L], masks [L, V] boolean, weights [L]."""
  q = policy.q_values(params, states, w_lm, logit_bias)
  logp = jax.nn.log_softmax(jnp.where(masks, q / temperature, -jnp.inf), axis=-1)
  q_taken = jnp.take_along_axis(q, tokens[:, None], axis=-1)[:, 0]
  nll = -jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0]
  return jnp.mean(weights * nll + q_taken ** 2)


def cloned(params: policy.HeadParams, states: Array, tokens: Array, masks: Array, w_lm: Array,
           cfg: AgentConfig) -> tuple[Array, Array]:
  """(per step [L]: whether a_t is the strict greedy choice and sampled with probability >=
  init_prob, the behaviour policy's probabilities [L] of the a_t)."""
  q = policy.q_values(params, states, w_lm, cfg.logit_bias)
  masked = jnp.where(masks, q, -jnp.inf)
  chosen = jnp.take_along_axis(masked, tokens[:, None], axis=-1)[:, 0]
  others = jnp.where(jax.nn.one_hot(tokens, q.shape[-1], dtype=bool), -jnp.inf, masked)
  greedy = chosen > jnp.max(others, axis=-1)
  probs = jnp.exp(jnp.take_along_axis(sampling._sampling_logp(q, masks, cfg),  # noqa: SLF001
                                      tokens[:, None], axis=-1)[:, 0])
  return greedy & (probs >= cfg.init_prob), probs


@functools.partial(jax.jit, static_argnames=("cfg", "max_steps", "learning_rate"))
def warm_start(params: policy.HeadParams, states: Array, tokens: Array, masks: Array,
               w_lm: Array, cfg: AgentConfig, max_steps: int = MAX_STEPS,
               learning_rate: float = LEARNING_RATE
               ) -> tuple[policy.HeadParams, Array, Array]:
  """Behaviour-cloned head params, the number of Adam steps taken and whether it succeeded."""
  opt = optax.adam(learning_rate)
  grad = jax.grad(bc_loss)

  def not_done(carry):
    params, _, step = carry
    return (step < max_steps) & ~jnp.all(cloned(params, states, tokens, masks, w_lm, cfg)[0])

  def update(carry):
    params, opt_state, step = carry
    weights = 1.0 - cloned(params, states, tokens, masks, w_lm, cfg)[0].astype(jnp.float32)
    g = grad(params, states, tokens, masks, w_lm, weights, cfg.temperature, cfg.logit_bias)
    updates, opt_state = opt.update(g, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, step + 1

  params, _, steps = jax.lax.while_loop(not_done, update,
                                        (params, opt.init(params), jnp.zeros((), jnp.int32)))
  return params, steps, jnp.all(cloned(params, states, tokens, masks, w_lm, cfg)[0])
