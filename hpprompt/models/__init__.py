"""hpprompt.models."""
