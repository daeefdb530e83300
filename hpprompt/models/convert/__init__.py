"""hpprompt.models.convert."""
