"""Target-network updates."""
import chex
import optax


def polyak_update(online: chex.ArrayTree, target: chex.ArrayTree, rate: float) -> chex.ArrayTree:
  """theta' <- (1 - rate) theta' + rate theta over matching pytrees (RLPrompt/PIN: rate = 0.001).

  RLPrompt `SQLModule._pre_steps` ("polyak", target_learning_rate 0.001) and PIN `sync_target_model`.
  Thin wrapper of `optax.incremental_update` with the argument order of this project.
  """
  return optax.incremental_update(online, target, rate)
