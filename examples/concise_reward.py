"""A worked reward for `experiments/custom_task.py`: concise sentence endings.

With `--template="{prompt} {sentence_1}"` the task LM continues `{prompt} {input}` (inputs such as
"The food was", `examples/concise/inputs.txt`) and its output is cut after its first sentence. The
reward is minus the number of words of the output, so the agent looks for a prompt after which
SmolLM2 ends each sentence briefly ("The food was" -> "delicious."); `examples/README.md` has the
run.
"""


def reward(prompts: list[str], inputs: list[str], outputs: list[str]) -> list[float]:
  """Minus the number of words of each output (prompts and inputs unused)."""
  del prompts, inputs
  return [-float(len(out.split())) for out in outputs]
