"""Score fixed prompts with a reward on an input file: greedy SmolLM2 outputs, mean ± s.e.

  python examples/score_prompts.py examples/concise_reward.py:reward examples/concise/test.txt \
      "" "Year or else"

The null prompt ("") against a learned one, with the example's template and greedy decoding (the
committed run's `--top_k=1 --eval_samples=1`); the paired difference's s.e. is over the inputs.
"""
import sys

import jax
import numpy as np

from hpprompt.models import hub
from hpprompt.tasks import custom
from hpprompt.tasks import generation

TEMPLATE = "{prompt} {sentence_1}"


def main(reward_spec: str, inputs_path: str, prompts: list[str]) -> None:
  fn, name = custom.load_reward(reward_spec)
  inputs = custom.read_inputs(inputs_path)
  model, tok = hub.load_pretrained("smollm2")
  gen = generation.Generator(model, tok, template=TEMPLATE, top_k=1,
                             start_token=hub.document_start("smollm2", tok))
  outputs = gen.generate(prompts, inputs, 1, jax.random.PRNGKey(0))
  rewards = []
  for prompt, outs in zip(prompts, outputs):
    texts = [o[0] for o in outs]
    r = np.asarray(custom.call_reward(fn, name, [prompt] * len(inputs), inputs, texts, where="on the scored inputs"))
    rewards.append(r)
    print(f"{prompt!r}: {r.mean():.3f} ± {r.std(ddof=1) / np.sqrt(len(r)):.3f} "
          f"({len(r)} inputs), e.g. {texts[0]!r}")
  for prompt, r in zip(prompts[1:], rewards[1:]):
    d = r - rewards[0]
    print(f"{prompt!r} - {prompts[0]!r}: {d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f}")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2], sys.argv[3:])
