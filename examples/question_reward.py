"""A worked reward for `experiments/custom_task.py`: outputs that are questions.

The task LM continues `{prompt} "{input}" "` and its output is cut after its first sentence, so an
output that ends with "?" is a question. The agent has to find a prompt that makes SmolLM2 answer a
Yelp review sentence with a question instead of a statement.
"""


def reward(prompts: list[str], inputs: list[str], outputs: list[str]) -> list[float]:
  """1 for an output that ends with a question mark, else 0 (prompts and inputs unused)."""
  del prompts, inputs
  return [float(out.rstrip().endswith("?")) for out in outputs]
