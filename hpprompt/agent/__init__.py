"""hpprompt.agent."""
