"""Task scores and prompt naturalness metrics."""
from hpprompt.metrics.perplexity import prompt_nll
from hpprompt.metrics.perplexity import prompt_perplexity

__all__ = ("prompt_nll", "prompt_perplexity")
