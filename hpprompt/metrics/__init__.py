"""Task scores and prompt naturalness metrics: accuracy, Matthews correlation, perplexity,
BERTScore, style-transfer metrics, FLOP counts (`flops`).

Floor 2: imports models and the floor-0 rooms only, never tasks or anything above.
"""
from hpprompt.metrics.classification import accuracy
from hpprompt.metrics.classification import macro_f1
from hpprompt.metrics.classification import matthews_corrcoef
from hpprompt.metrics.perplexity import prompt_nll
from hpprompt.metrics.perplexity import prompt_perplexity

__all__ = ("accuracy", "macro_f1", "matthews_corrcoef", "prompt_nll", "prompt_perplexity")
