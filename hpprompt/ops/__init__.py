"""Pure jnp math of PIN, RLPrompt and InfoPrompt: policies, values, losses, rewards (no Flax).

Floor 0: imports no other room.
"""
from hpprompt.ops.mutual_info import info_nce
from hpprompt.ops.regularizers import Regularizer
from hpprompt.ops.regularizers import get_regularizer
from hpprompt.ops.regularizers import shannon_regularizer
from hpprompt.ops.regularizers import tsallis_regularizer
from hpprompt.ops.rewards import gap_reward
from hpprompt.ops.rewards import rescale
from hpprompt.ops.rewards import zscore
from hpprompt.ops.shannon import logsumexp
from hpprompt.ops.shannon import shannon_entropy
from hpprompt.ops.shannon import softmax
from hpprompt.ops.soft_q import VARIANTS as SOFT_Q_VARIANTS
from hpprompt.ops.soft_q import soft_q_loss
from hpprompt.ops.soft_q import soft_q_td
from hpprompt.ops.soft_q import soft_q_v1
from hpprompt.ops.soft_q import soft_q_v2
from hpprompt.ops.soft_q import soft_q_v2_v3
from hpprompt.ops.soft_q import soft_q_v3
from hpprompt.ops.sparsemax import DEFAULT_TOP_K
from hpprompt.ops.sparsemax import sparsemax
from hpprompt.ops.sparsemax import sparsemax_threshold
from hpprompt.ops.sparsemax import spmax
from hpprompt.ops.sparsemax import tsallis_entropy
from hpprompt.ops.target import polyak_update

__all__ = (
    "DEFAULT_TOP_K", "Regularizer", "SOFT_Q_VARIANTS", "gap_reward", "get_regularizer", "info_nce",
    "logsumexp", "polyak_update", "rescale", "shannon_entropy", "shannon_regularizer", "soft_q_loss",
    "soft_q_td", "soft_q_v1", "soft_q_v2", "soft_q_v2_v3", "soft_q_v3", "softmax", "sparsemax",
    "sparsemax_threshold", "spmax", "tsallis_entropy", "tsallis_regularizer", "zscore",
)
