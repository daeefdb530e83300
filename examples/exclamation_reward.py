"""A worked reward for `experiments/custom_task.py`: enthusiastic outputs.

With `--template="{prompt} {sentence_1}"` the task LM continues `{prompt} {input}` (inputs such as
"The food was", `examples/exclamation/inputs.txt`), and its output is cut after its first sentence,
so an output that ends with "!" is an exclamation. The agent has to find a prompt after which
SmolLM2 finishes the sentences with exclamations (`examples/README.md` has the run).
"""


def reward(prompts: list[str], inputs: list[str], outputs: list[str]) -> list[float]:
  """1 for an output that ends with an exclamation mark, else 0 (prompts and inputs unused)."""
  del prompts, inputs
  return [float(out.rstrip().endswith("!")) for out in outputs]
