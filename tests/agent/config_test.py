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

FSC = "examples/few-shot-classification/"
README_COMMAND = {
    # algo=sql (README.md:15) -> SQLModule (rlprompt/modules/module_helpers.py:12-13) and
    # LMAdaptorModel (rlprompt/models/model_helpers.py:24-25): Categorical(logits=...) sampling
    # (rlprompt/models/lm_adaptor_model.py:161-163), logsumexp value (sql_losses.py:123)
    "regularizer": ("shannon", "README.md:15; module_helpers.py:12-13; "
                               "lm_adaptor_model.py:161-163"),
    "temperature": (1.0, "no temperature: logits enter softmax / logsumexp as they are "
                         "(lm_adaptor_model.py:161-163, sql_losses.py:123)"),
    # loss_impl=v1 (README.md:18) under algo=sql: soft_q_loss_with_sparse_rewards_1, one-step TD
    "loss": ("td", "README.md:18; sql_losses.py:47-48, 110-142"),
    "discount": (1.0, "QLModuleConfig.gamma = 1. (module_helpers.py:58); no discount in "
                      "sql_losses.py:128-132"),
    "prompt_length": (5, "README.md:13-14 (prompt_length=5, max_decoding_length=5)"),
    "prompts_per_step": (16, "README.md:9 (prompt_train_batch_size=16)"),
    "sampling_top_k": (256, FSC + "fsc_config.yaml:22 (top_k: 256); lm_adaptor_model.py:154-155"),
    "filter_top_k": (10_000, "README.md:19-20 (fluent=true, fluent_top_k=10000); "
                             "lm_adaptor_model.py:76-82"),
    "exclude_special_tokens": (False, "lm_adaptor_model.py:148-163: no token is masked besides "
                                      "the fluent filter and top-k"),
    "mlp_hidden": (2048, "LMModelConfig.hidden_size (model_helpers.py:65)"),
    "logit_bias": (0.0, "README.md:17 (logit_bias=false)"),
    "learning_rate": (5e-5, FSC + "fsc_config.yaml:28"),
    "grad_clip": (5.0, "TrainerConfig.gradient_clip_norm "
                       "(rlprompt/trainers/trainer_helpers.py:52-53)"),
    "polyak_rate": (1e-3, "target_update_method polyak, target_learning_rate 0.001 "
                          "(module_helpers.py:48-50; sql_module.py:87-95)"),
    "replay": (True, "README.md:16 (training_mode=sql-offpolicy); sql_module.py:56-61, 138-165"),
    "replay_capacity": (64_000, "SimpleReplayTokenSeqPool(max_size=64000) (sql_module.py:59)"),
    "replay_batch": (256, "README.md:12 (off_train_batch_size=256)"),
    "reward_zscore": (True, FSC + "fsc_helpers.py:138 (compute_zscore: True); "
                            "fsc_reward.py:153-161"),
    "reward_old_range": ((0.0, 1.0), FSC + "fsc_config.yaml:17-18"),
    "reward_new_range": ((0.0, 1.0), FSC + "fsc_config.yaml:19-20 (reward_shaping True, "
                                         "module_helpers.py:53)"),
}


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
