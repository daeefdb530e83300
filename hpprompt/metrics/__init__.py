"""Task scores and prompt naturalness metrics."""
from hpprompt.metrics.classification import accuracy
from hpprompt.metrics.classification import macro_f1
from hpprompt.metrics.classification import matthews_corrcoef
from hpprompt.metrics.perplexity import prompt_nll
from hpprompt.metrics.perplexity import prompt_perplexity

__all__ = ("accuracy", "macro_f1", "matthews_corrcoef", "prompt_nll", "prompt_perplexity")
