"""Soft prompt tuning (Lester et al. 2021), InfoPrompt (Wu et al. 2023), PEZ (Wen et al. 2023).

All three share one embedding-level task path (`embedding_task`) and one training step
(`soft_prompt.train_step`); they differ in what is trained and in the loss.
"""
from hpprompt.baselines.embedding_task import EmbeddingTask
from hpprompt.baselines.embedding_task import PromptBatch
from hpprompt.baselines.embedding_task import allowed_tokens
from hpprompt.baselines.embedding_task import class_logits
from hpprompt.baselines.embedding_task import insert_prompt
from hpprompt.baselines.embedding_task import nearest_ids
from hpprompt.baselines.embedding_task import prompt_embeddings
from hpprompt.baselines.embedding_task import read_hidden
from hpprompt.baselines.infoprompt import InfoPrompt
from hpprompt.baselines.infoprompt import InfoPromptConfig
from hpprompt.baselines.pez import PEZ
from hpprompt.baselines.pez import PEZConfig
from hpprompt.baselines.soft_prompt import INITS
from hpprompt.baselines.soft_prompt import Frozen
from hpprompt.baselines.soft_prompt import SoftPrompt
from hpprompt.baselines.soft_prompt import SoftPromptConfig
from hpprompt.baselines.soft_prompt import TrainState
from hpprompt.baselines.soft_prompt import init_prompt
from hpprompt.baselines.soft_prompt import train_step

METHODS = {m.name: m for m in (SoftPrompt, InfoPrompt, PEZ)}

__all__ = (
    "INITS", "METHODS", "EmbeddingTask", "Frozen", "InfoPrompt", "InfoPromptConfig", "PEZ",
    "PEZConfig", "PromptBatch", "SoftPrompt", "SoftPromptConfig", "TrainState", "allowed_tokens",
    "class_logits", "init_prompt", "insert_prompt", "nearest_ids", "prompt_embeddings",
    "read_hidden", "train_step",
)
