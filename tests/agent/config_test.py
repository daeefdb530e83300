"""The `pin-readme` preset is PIN's few-shot README command, setting by setting.

The command (Youseob/PIN @ 3357f09, examples/few-shot-classification/README.md:7-21) runs
`algo=sql training_mode=sql-offpolicy loss_impl=v1 fluent=true fluent_top_k=10000` with
`prompt_train_batch_size=16 off_train_batch_size=256 prompt_length=5 logit_bias=false`; the rest
comes from fsc_config.yaml and the dataclass defaults `run_fsc.py` composes. (README.md:19 has a
space after its backslash and README.md:20 one after `fluent_top_k=`; read as
`fluent=true fluent_top_k=10000`, as the other two READMEs write it.) Paths below are in PIN.
"""
import dataclasses

from hpprompt.agent.config import PRESETS
from hpprompt.agent.config import SELECTION
from hpprompt.agent.config import AgentConfig
from tests.launch import official

# {agent field: (the command's value, PIN file:line)}: tests/launch/official.py, shared with the
# `--paper` checks.
README_COMMAND = {k.removeprefix("agent."): v for k, v in official.PIN_README_AGENT.items()}


def test_pin_readme_is_the_readme_command():
  preset = PRESETS["pin-readme"]
  for name, (value, source) in README_COMMAND.items():
    got = getattr(preset, name)
    assert got == value, f"{name}: {got!r}, PIN {value!r} ({source})"
  # A setting the table does not list must be one the command cannot change (at its default).
  default = AgentConfig()
  for field in dataclasses.fields(AgentConfig):
    if field.name not in README_COMMAND:
      assert getattr(preset, field.name) == getattr(default, field.name), field.name
  assert SELECTION["pin-readme"] == "reward"      # PIN's trainer: best mean validation reward


def test_pin_readme_differs_from_pin_as_the_code_paths_do():
  """algo=sql vs algo=sparse-ql: softmax over the top 256 and one-step log-sum-exp TD, instead of
  sparsemax over the filter and the Monte-Carlo v1; everything else equal."""
  readme, pin = PRESETS["pin-readme"], PRESETS["pin"]
  differ = {f.name for f in dataclasses.fields(AgentConfig)
            if getattr(readme, f.name) != getattr(pin, f.name)}
  assert differ == {"regularizer", "loss", "sampling_top_k", "exclude_special_tokens"}
  assert (pin.regularizer, pin.loss, pin.sampling_top_k) == ("tsallis", "v1", None)
