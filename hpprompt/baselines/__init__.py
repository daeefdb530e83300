"""hpprompt.baselines."""
