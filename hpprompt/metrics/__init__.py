"""hpprompt.metrics."""
