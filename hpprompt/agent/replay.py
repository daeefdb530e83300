"""A fixed-size replay buffer of prompt trajectories (PIN `SimpleReplayTokenSeqPool`, 64,000).

A pytree of arrays with a write pointer: new trajectories overwrite the oldest; batches are drawn
uniformly with replacement among the stored ones (`np.random.randint(0, size, n)` in PIN; here from a
JAX key, so runs are reproducible and the buffer can be checkpointed with the rest of the state).
"""
import functools

import chex
import jax
import jax.numpy as jnp
from flax import struct

from hpprompt.agent.learner import Batch

Array = chex.Array


@struct.dataclass
class ReplayBuffer:
  data: Batch        # leading axis = capacity
  size: Array        # scalar int32, number of stored trajectories
  pointer: Array     # scalar int32, next slot to write

  @classmethod
  def create(cls, capacity: int, length: int, dim: int, dtype=jnp.float32) -> "ReplayBuffer":
    data = Batch(tokens=jnp.zeros((capacity, length), jnp.int32),
                 states=jnp.zeros((capacity, length, dim), dtype),
                 thresholds=jnp.zeros((capacity, length), jnp.float32),
                 rewards=jnp.zeros((capacity,), jnp.float32))
    return cls(data=data, size=jnp.zeros((), jnp.int32), pointer=jnp.zeros((), jnp.int32))

  @property
  def capacity(self) -> int:
    return self.data.rewards.shape[0]


@functools.partial(jax.jit, donate_argnums=(0,))
def add(buffer: ReplayBuffer, batch: Batch) -> ReplayBuffer:
  """Writes the n trajectories of `batch` at the pointer (wrapping around)."""
  n = batch.rewards.shape[0]
  slots = (buffer.pointer + jnp.arange(n)) % buffer.capacity
  data = jax.tree.map(lambda d, x: d.at[slots].set(x.astype(d.dtype)), buffer.data, batch)
  return buffer.replace(data=data, size=jnp.minimum(buffer.size + n, buffer.capacity),
                        pointer=(buffer.pointer + n) % buffer.capacity)


@functools.partial(jax.jit, static_argnames=("n",))
def sample(buffer: ReplayBuffer, key: Array, n: int) -> Batch:
  """n trajectories drawn uniformly with replacement from the stored ones."""
  idx = jax.random.randint(key, (n,), 0, jnp.maximum(buffer.size, 1))
  return jax.tree.map(lambda d: d[idx], buffer.data)
