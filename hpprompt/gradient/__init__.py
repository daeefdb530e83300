"""Gradient-based prompt methods: soft prompt tuning (Lester et al. 2021), InfoPrompt (Wu et al.
2023), PEZ (Wen et al. 2023), and PEZ's textual-inversion search on CLIP (`pez_clip`).

All three train through one embedding-level task path (`tasks.embedding_task`, or
`tasks.clip_task` for CLIP) and one training step (`soft_prompt.train_step`); they differ in what is
trained and in the loss. `loop.train` is the soft-prompt training loop the launcher calls.
Floor 4: imports tasks and below, never agent, launch or orchestration.
"""
from hpprompt.gradient.infoprompt import InfoPrompt
from hpprompt.gradient.infoprompt import InfoPromptConfig
from hpprompt.gradient.pez import PEZ
from hpprompt.gradient.pez import PEZConfig
from hpprompt.gradient.soft_prompt import INITS
from hpprompt.gradient.soft_prompt import Frozen
from hpprompt.gradient.soft_prompt import SoftPrompt
from hpprompt.gradient.soft_prompt import SoftPromptConfig
from hpprompt.gradient.soft_prompt import TrainState
from hpprompt.gradient.soft_prompt import init_prompt
from hpprompt.gradient.soft_prompt import train_step

METHODS = {m.name: m for m in (SoftPrompt, InfoPrompt, PEZ)}

__all__ = (
    "INITS", "METHODS", "Frozen", "InfoPrompt", "InfoPromptConfig", "PEZ", "PEZConfig",
    "SoftPrompt", "SoftPromptConfig", "TrainState", "init_prompt", "train_step",
)
