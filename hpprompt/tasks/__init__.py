"""hpprompt.tasks."""
