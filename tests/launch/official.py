"""The official settings of each set-up `--paper` reproduces, each with the file it comes from.

PIN = Youseob/PIN @ 3357f09, RLP = mingkaid/rl-prompt @ 30528c2 (paths inside those repositories),
InfoPrompt / PEZ as baselines.md records their code. A table maps a setting (a launcher config
field, or an agent field under "agent.") to (official value, source). The tests compare what
`--paper` resolves to with these tables (tests/launch/paper_test.py, tests/agent/config_test.py).
"""
PIN_FSC = "PIN examples/few-shot-classification/"
PIN_TST = "PIN examples/text-style-transfer/"
PIN_PIC = "PIN examples/prompt-inversion-with-clip/"
RLP_FSC = "RLP examples/few-shot-classification/"
RLP_TST = "RLP examples/text-style-transfer/"

# Settings every set-up shares (the trainer, the adaptor MLP, the target network).
_COMMON_PIN = {
    "agent.temperature": (1.0, "PIN: no temperature; logits enter softmax / sparsemax as they are"),
    "agent.mlp_hidden": (2048, "PIN rlprompt/models/model_helpers.py:65 (hidden_size)"),
    "agent.grad_clip": (5.0, "PIN rlprompt/trainers/trainer_helpers.py:52-53"),
    "agent.polyak_rate": (1e-3, "PIN rlprompt/modules/module_helpers.py:48-50 (polyak, 0.001)"),
    "agent.discount": (1.0, "PIN rlprompt/modules/module_helpers.py:58 (gamma = 1.)"),
    "agent.exclude_special_tokens": (False, "PIN rlprompt/models/lm_adaptor_model.py:148-163 and "
                                            "lm_filter_model.py:196-211 mask no special token"),
}
_COMMON_RLP = {
    "agent.temperature": (1.0, "RLP: no temperature (lm_adaptor_model.py:138-145)"),
    "agent.mlp_hidden": (2048, "RLP rlprompt/models/model_helpers.py:36"),
    "agent.grad_clip": (5.0, "RLP rlprompt/trainers/trainer_helpers.py:43-44"),
    "agent.polyak_rate": (1e-3, "RLP rlprompt/modules/module_helpers.py:28-30"),
    "agent.discount": (1.0, "RLP rlprompt/losses/sql_losses.py: undiscounted targets"),
    "agent.exclude_special_tokens": (False, "RLP rlprompt/models/lm_adaptor_model.py:116-145 "
                                            "masks no special token"),
    "agent.regularizer": ("shannon", "RLP lm_adaptor_model.py:145 (Categorical(logits)), "
                                     "sql_losses.py (logsumexp values)"),
    "agent.loss": ("v2_v3", "RLP rlprompt/modules/module_helpers.py:24 (v2_v2r_v3_v3r, "
                            "coefficient None)"),
    "agent.replay": (False, "RLP rlprompt/modules/module_helpers.py:25 (sql-onpolicy)"),
    "agent.filter_top_k": (None, "RLP rlprompt/models/model_helpers.py:40 (fluent: False)"),
}

# PIN's few-shot README command (examples/few-shot-classification/README.md:7-21; README.md:19-20
# have stray spaces after `\` and `=`, read as fluent=true fluent_top_k=10000).
PIN_README_AGENT = {
    **_COMMON_PIN,
    "agent.regularizer": ("shannon", PIN_FSC + "README.md:15 (algo=sql) -> SQLModule / "
                                     "LMAdaptorModel (module_helpers.py:12-13, model_helpers.py:"
                                     "24-25), Categorical(logits) (lm_adaptor_model.py:161-163)"),
    "agent.loss": ("td", PIN_FSC + "README.md:18 (loss_impl=v1 under algo=sql): "
                         "sql_losses.py:47-48, 110-142"),
    "agent.prompt_length": (5, PIN_FSC + "README.md:13-14"),
    "agent.prompts_per_step": (16, PIN_FSC + "README.md:9"),
    "agent.sampling_top_k": (256, PIN_FSC + "fsc_config.yaml:22; lm_adaptor_model.py:154-155"),
    "agent.filter_top_k": (10_000, PIN_FSC + "README.md:19-20; lm_adaptor_model.py:76-82"),
    "agent.logit_bias": (0.0, PIN_FSC + "README.md:17"),
    "agent.learning_rate": (5e-5, PIN_FSC + "fsc_config.yaml:28"),
    "agent.replay": (True, PIN_FSC + "README.md:16 (sql-offpolicy); sql_module.py:56-61"),
    "agent.replay_capacity": (64_000, "PIN rlprompt/modules/sql_module.py:59"),
    "agent.replay_batch": (256, PIN_FSC + "README.md:12"),
    "agent.reward_zscore": (True, PIN_FSC + "fsc_helpers.py:138; fsc_reward.py:153-161"),
    "agent.reward_old_range": ((0.0, 1.0), PIN_FSC + "fsc_config.yaml:17-18"),
    "agent.reward_new_range": ((0.0, 1.0), PIN_FSC + "fsc_config.yaml:19-20"),
}
PIN_FSC_LAUNCH = {
    "policy_lm": ("facebook/opt-125m", PIN_FSC + "README.md:8"),
    "task_lm": ("roberta-large", PIN_FSC + "fsc_config.yaml:11"),
    "steps": (6000, PIN_FSC + "fsc_config.yaml:24"),
    "eval_every": (20, PIN_FSC + "fsc_config.yaml:26"),
    "selection": ("reward", "PIN rlprompt/trainers/trainer.py:162-182 (best eval/score)"),
    "calibrate": (False, PIN_FSC + "fsc_reward.py:100-102 (softmax of the raw verbalizer logits)"),
    "truncate": (True, PIN_FSC + "fsc_reward.py:203 (truncation=True)"),
}

RLP_FSC_ALL = {
    **_COMMON_RLP,
    "policy_lm": ("distilgpt2", "RLP rlprompt/models/model_helpers.py:34"),
    "task_lm": ("roberta-large", RLP_FSC + "fsc_config.yaml:11"),
    "steps": (12_000, RLP_FSC + "fsc_config.yaml:23"),
    "eval_every": (10, RLP_FSC + "fsc_config.yaml:25"),
    "selection": (None, "RLP rlprompt/trainers/trainer.py: no best prompt is kept"),
    "calibrate": (False, RLP_FSC + "fsc_reward.py:98-102"),
    "truncate": (True, RLP_FSC + "fsc_reward.py:203"),
    "agent.prompt_length": (5, RLP_FSC + "fsc_config.yaml:13"),
    "agent.prompts_per_step": (16, RLP_FSC + "fsc_config.yaml:14"),
    "agent.sampling_top_k": (256, RLP_FSC + "fsc_config.yaml:21; lm_adaptor_model.py:138"),
    "agent.logit_bias": (0.0, "RLP rlprompt/models/model_helpers.py:38"),
    "agent.learning_rate": (5e-5, RLP_FSC + "fsc_config.yaml:27"),
    "agent.reward_zscore": (True, RLP_FSC + "fsc_helpers.py:137"),
    "agent.reward_old_range": ((0.0, 1.0), RLP_FSC + "fsc_config.yaml:17-18"),
    "agent.reward_new_range": ((0.0, 5.0), RLP_FSC + "fsc_config.yaml:19-20"),
}

# Style transfer: the papers' reward / data settings (both repositories share tst_helpers.py).


def _tst(prefix: str, steps: tuple, eval_line: int, batch_line: int) -> dict:
  return {
      "steps": steps,
      "eval_every": (50, prefix + f"tst_config.yaml:{eval_line}"),
      "num_samples": (32, prefix + "tst_helpers.py:104"),
      "num_bootstraps": (4, prefix + "tst_helpers.py:105"),
      "sources_per_step": (2, prefix + f"tst_config.yaml:{batch_line} (train_batch_size)"),
      "top_k": (10, prefix + "tst_helpers.py:98 (task_top_k)"),
      "template": ('{prompt} "{sentence_1}" "', prefix + "tst_helpers.py:109"),
      "eval_samples": (32, RLP_TST + "evaluation/run_eval.py:74-75 (num_samples, default 32)"),
      "dev_limit": (0, "the whole dev set (rlprompt/trainers/trainer.py evaluates val_dataset)"),
      "test_limit": (0, RLP_TST + "evaluation/run_eval.py:69-75 (the whole test file)"),
      "agent.reward_zscore": (True, prefix + "tst_helpers.py:106"),
  }


PIN_TST_ALL = {
    **_COMMON_PIN, **_tst(PIN_TST, (15_000, PIN_TST + "tst_config.yaml:31"), 34, 30),
    "agent.regularizer": ("tsallis", PIN_TST + "README.md:43 (algo=sparse-ql): LMFilterModel "
                                     "sparsemax sampling (lm_filter_model.py:201-211)"),
    "agent.loss": ("v1", PIN_TST + "README.md:46; sparse_ql_losses.py:183-221"),
    "agent.prompt_length": (5, PIN_TST + "tst_config.yaml:18"),
    # README.md:42 passes 8, which with num_repeats 8 (tst_config.yaml:15) and 2 sources per step
    # would not pair prompts and sources; the config's 16 = 8 x 2 is taken.
    "agent.prompts_per_step": (16, PIN_TST + "tst_config.yaml:15, 19"),
    "agent.sampling_top_k": (None, "PIN rlprompt/models/lm_filter_model.py:203-211 (top_k unused)"),
    "agent.filter_top_k": (10_000, PIN_TST + "README.md:47-48"),
    "agent.logit_bias": (0.0, PIN_TST + "README.md:45"),
    "agent.learning_rate": (5e-5, PIN_TST + "tst_config.yaml:36"),
    "agent.replay": (True, PIN_TST + "README.md:44 (sparse-ql-offpolicy)"),
    "agent.replay_capacity": (64_000, "PIN rlprompt/modules/sparse_ql_module.py:59"),
    "agent.replay_batch": (256, PIN_TST + "README.md:39"),
    "agent.reward_old_range": ((0.0, 1.0), PIN_TST + "tst_config.yaml:24-25"),
    "agent.reward_new_range": ((0.0, 1.0), PIN_TST + "tst_config.yaml:26-27"),
}

RLP_TST_ALL = {
    **_COMMON_RLP, **_tst(RLP_TST, (12_000, RLP_TST + "tst_config.yaml:27"), 30, 26),
    "agent.prompt_length": (5, RLP_TST + "tst_config.yaml:14"),
    "agent.prompts_per_step": (8, RLP_TST + "tst_config.yaml:15"),
    "agent.sampling_top_k": (50, RLP_TST + "tst_config.yaml:24"),
    "agent.logit_bias": (-10.0, RLP_TST + "tst_config.yaml:18"),
    "agent.learning_rate": (5e-5, RLP_TST + "tst_config.yaml:32"),
    "agent.reward_old_range": ((0.0, 1.0), RLP_TST + "tst_config.yaml:20-21"),
    "agent.reward_new_range": ((-20.0, 80.0), RLP_TST + "tst_config.yaml:22-23"),
}

PIN_PIC_ALL = {
    **_COMMON_PIN,
    "steps": (20_000, PIN_PIC + "README.md:23; pic_config.yaml:60"),
    "eval_every": (50, PIN_PIC + "pic_config.yaml:63"),
    "agent.regularizer": ("tsallis", PIN_PIC + "README.md:16 (algo=sparse-ql)"),
    "agent.loss": ("v1", PIN_PIC + "README.md:19"),
    "agent.prompt_length": (8, PIN_PIC + "README.md:14-15"),
    "agent.prompts_per_step": (32, PIN_PIC + "README.md:10"),
    "agent.sampling_top_k": (None, "PIN rlprompt/models/lm_filter_model.py:203-211"),
    "agent.filter_top_k": (10_000, PIN_PIC + "README.md:20-21"),
    "agent.logit_bias": (0.0, PIN_PIC + "README.md:18; pic_config.yaml:51"),
    "agent.learning_rate": (5e-5, PIN_PIC + "pic_config.yaml:65"),
    "agent.replay": (True, PIN_PIC + "README.md:17 (sparse-ql-offpolicy)"),
    "agent.replay_capacity": (64_000, "PIN rlprompt/modules/sparse_ql_module.py:59"),
    "agent.replay_batch": (256, PIN_PIC + "README.md:13"),
    "agent.reward_old_range": ((0.0, 1.0), PIN_PIC + "pic_config.yaml:53-54"),
    "agent.reward_new_range": ((0.0, 1.0), PIN_PIC + "README.md:22; pic_config.yaml:55"),
}

# paper.py's baselines (experiments/soft_prompt.py --paper).
INFOPROMPT = {
    "task_lm": ("roberta-large", "InfoPrompt trainers/options.py (baselines.md §1.4)"),
    # n_prompt 1 vector in each of the 4 <ppt> slots of its templates: 4 vectors (here in one slot,
    # README "Deliberate differences").
    "prompt_length": (4, "InfoPrompt trainers/options.py n_prompt 1 x 4 template slots "
                         "(baselines.md §1.1, §1.4)"),
    "batch_size": (8, "InfoPrompt trainers/options.py (baselines.md §1.4)"),
    "epochs": (30, "InfoPrompt trainers/options.py (baselines.md §1.4)"),
    "learning_rate": (1e-3, "InfoPrompt trainers/options.py, AdamW (baselines.md §1.4)"),
    "options.prompt_generator": (True, "InfoPrompt infoprompt.py (baselines.md §1.1)"),
    "options.variational_head": (True, "InfoPrompt infoprompt.py (baselines.md §1.2)"),
    "options.weight_decay": (0.01, "InfoPrompt infoprompt.py, AdamW (baselines.md §1.4)"),
    "options.warmup_fraction": (0.06, "InfoPrompt infoprompt.py, 6% linear warm-up (§1.4)"),
    "options.linear_decay": (True, "InfoPrompt get_linear_schedule_with_warmup (§1.4)"),
}
PEZ = {
    "task_lm": ("roberta-large", "PIN paper App. B.3 (baselines.md §2.4)"),
    "prompt_length": (5, "PIN paper App. B.3: 5 prompt tokens (baselines.md §2.4)"),
    "batch_size": (16, "PIN paper App. B.3: batch 16; PEZ prompt_lm/README.md (§2.3)"),
    "steps": (5000, "PEZ prompt_lm/README.md --max_steps=5000 (baselines.md §2.3)"),
    "eval_every": (100, "PEZ prompt_lm/src/train_prompts.py: eval every 100 steps (§2.3)"),
    "init": ("class", "PEZ prompt_lm: initialize_from_classes=True (baselines.md §2.3)"),
}
SOFT = {
    "task_lm": ("roberta-large", "RLPrompt Table 2 / PIN Table 1, soft prompt row (methods.md "
                                 "§4.1)"),
    "prompt_length": (5, "RLPrompt Table 2 / PIN Table 1: 5 soft tokens (methods.md §4.1)"),
}
PEZ_CLIP = {"steps": (3000, "PEZ sample_config.json (iter: 3000)")}
