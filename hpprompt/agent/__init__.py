"""The prompt agent of PIN and RLPrompt: policy, sampler, learner, replay buffer, trainer.

Floor 4 (a method room, beside `gradient`): imports tasks, models, ops and training; never
gradient, launch or orchestration.
"""
from hpprompt.agent.agent import AgentState
from hpprompt.agent.agent import PromptAgent
from hpprompt.agent.config import PRESETS
from hpprompt.agent.config import AgentConfig
from hpprompt.agent.config import get_preset
from hpprompt.agent.learner import Batch
from hpprompt.agent.learner import TrainState
from hpprompt.agent.sampling import Rollout

__all__ = ("AgentConfig", "AgentState", "Batch", "PRESETS", "PromptAgent", "Rollout", "TrainState",
           "get_preset")
