"""hpprompt.training."""
