"""Agent configuration and the presets that reproduce each paper's set-up.

RLPrompt and PIN are one agent with different settings: the entropy regulariser (policy + value),
the action filter, the loss variant, on-policy vs replay, and reward scale (methods.md §1.6, §3.5).
"""
import dataclasses

from hpprompt.ops import SOFT_Q_VARIANTS


@dataclasses.dataclass(frozen=True)
class AgentConfig:
  """Everything that defines the learning algorithm (the task and LMs are chosen separately)."""
  regularizer: str = "shannon"            # 'shannon' (RLPrompt) | 'tsallis' (PIN)
  temperature: float = 1.0                # alpha; RLPrompt/PIN keep 1 and scale the reward instead
  loss: str = "v2_v3"                     # 'v1' | 'v2' | 'v3' | 'v2_v3'
  discount: float = 1.0
  prompt_length: int = 5
  prompts_per_step: int = 16
  sampling_top_k: int | None = 256        # sample from the top-k of the policy logits (RLPrompt)
  filter_top_k: int | None = None         # PIN's ignorable-token filter on the frozen LM's logits
  exclude_special_tokens: bool = True     # never sample special tokens (e.g. <|endoftext|>, </s>)
  mlp_hidden: int = 2048
  logit_bias: float = 0.0
  learning_rate: float = 5e-5
  grad_clip: float = 5.0
  polyak_rate: float = 1e-3
  replay: bool = False                    # PIN: off-policy learning from a replay buffer
  replay_capacity: int = 64_000
  replay_batch: int = 256
  reward_zscore: bool = True
  reward_old_range: tuple[float, float] = (0.0, 1.0)
  reward_new_range: tuple[float, float] = (0.0, 5.0)
  # Starting prompt (hpprompt/agent/warm_start.py): the head is behaviour-cloned until it is the
  # greedy prompt and the behaviour policy samples each of its tokens with probability >= init_prob.
  init_prompt: str | None = None
  init_prob: float = 0.5

  def __post_init__(self):
    if self.regularizer not in ("shannon", "tsallis"):
      raise ValueError(f"regularizer must be 'shannon' or 'tsallis', got {self.regularizer!r}.")
    if self.loss not in SOFT_Q_VARIANTS:
      raise ValueError(f"loss must be one of {SOFT_Q_VARIANTS}, got {self.loss!r}.")
    for name in ("prompt_length", "prompts_per_step", "mlp_hidden", "replay_capacity",
                 "replay_batch"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
    for name in ("sampling_top_k", "filter_top_k"):
      if getattr(self, name) is not None and getattr(self, name) < 1:
        raise ValueError(f"{name} must be None or >= 1, got {getattr(self, name)}.")
    if not 0.0 <= self.discount <= 1.0:
      raise ValueError(f"discount must be in [0, 1], got {self.discount}.")
    if self.temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {self.temperature}.")
    if not 0.0 < self.init_prob < 1.0:
      raise ValueError(f"init_prob must be in (0, 1), got {self.init_prob}.")
    if self.replay and self.replay_batch > self.replay_capacity:
      raise ValueError("replay_batch must not exceed replay_capacity.")


# Paper set-ups (few-shot classification). Policy LMs: RLPrompt distilgpt2, PIN facebook/opt-125m;
# those, the task LM, steps and validation cadence of each paper are in hpprompt.launch.paper.
# Loss variants (hpprompt.ops.soft_q), which preset uses which and why (paths in PIN @ 3357f09):
#   rlprompt: v2_v3 ((v2 + v3)/2, bootstrapped single- and multi-step path consistency): RLPrompt's
#     fsc config (`sql_loss_impl=v2_v2r_v3_v3r`, coefficient None).
#   pin: v1 (Monte-Carlo: Q_t onto R) with sparsemax / spmax: PIN's `algo=sparse-ql loss_impl=v1`
#     (SPARSE_QL_Module; `sparse_ql_loss_1`, rlprompt/losses/sparse_ql_losses.py:183-221), which
#     its style-transfer and CLIP README commands run (examples/text-style-transfer/README.md:43-46,
#     examples/prompt-inversion-with-clip/README.md:16-19).
#   pin-readme: PIN's few-shot README command exactly (examples/few-shot-classification/
#     README.md:7-21: `algo=sql training_mode=sql-offpolicy loss_impl=v1 fluent=true
#     fluent_top_k=10000`). `make_ql_module` sends algo == 'sql' to SQLModule
#     (rlprompt/modules/module_helpers.py:12-24) and `make_lm_adaptor_model` to LMAdaptorModel
#     (rlprompt/models/model_helpers.py:23-31): softmax sampling from the top 256
#     (fsc_config.yaml:22) of the filtered logits (rlprompt/models/lm_adaptor_model.py:76-82,
#     154-163), and `loss_impl=v1` there is `soft_q_loss_with_sparse_rewards_1`
#     (rlprompt/losses/sql_losses.py:47-48, 110-142): one-step TD of Q_t onto the log-sum-exp of
#     the filtered target Q at s_{t+1} (R at the last step) = our `td` with the Shannon value.
#   pin-td: td with V' = spmax of the filtered target Q: the Bellman target of PIN's paper (Eq. 5,
#     Algorithm 1); no README command runs it.
#   pin-v2v3: v2_v3 with V = spmax: PIN code's `loss_impl=v2_v3` (sparse_ql_loss_2_3).
#   pin-no-fluency, rlprompt-fluency, rlprompt-rb: PIN Sec. 5.3 ablations / baselines, each with
#     the loss of the method it modifies.
# Which of them produced each of PIN's tables is not stated (README, "Methods").
PRESETS: dict[str, AgentConfig] = {
    # RLPrompt (Deng et al. 2022): softmax, top-256 sampling, v2_v3, on-policy, R = 5 z.
    "rlprompt": AgentConfig(),
    # PIN (Choi et al. 2024): sparsemax over the top-10,000 filter, v1, replay 64k / 256, R = z.
    "pin": AgentConfig(regularizer="tsallis", loss="v1", sampling_top_k=None, filter_top_k=10_000,
                       replay=True, reward_new_range=(0.0, 1.0)),
    # PIN's few-shot README command: softmax over the top 256 of the top-10,000 filter, one-step
    # log-sum-exp TD, replay 64k / 256, R = z; special tokens sampled as in the code.
    "pin-readme": AgentConfig(regularizer="shannon", loss="td", sampling_top_k=256,
                              filter_top_k=10_000, exclude_special_tokens=False, replay=True,
                              reward_new_range=(0.0, 1.0)),
    # PIN with the paper's one-step spmax TD target (Eq. 5) instead of v1.
    "pin-td": AgentConfig(regularizer="tsallis", loss="td", sampling_top_k=None,
                          filter_top_k=10_000, replay=True, reward_new_range=(0.0, 1.0)),
    # PIN with its code's path-consistency loss (`loss_impl=v2_v3`).
    "pin-v2v3": AgentConfig(regularizer="tsallis", loss="v2_v3", sampling_top_k=None,
                            filter_top_k=10_000, replay=True, reward_new_range=(0.0, 1.0)),
    # PIN paper's ablations / baselines (Sec. 5.3).
    "pin-no-fluency": AgentConfig(regularizer="tsallis", loss="v1", sampling_top_k=None,
                                  filter_top_k=None, replay=True, reward_new_range=(0.0, 1.0)),
    "rlprompt-fluency": AgentConfig(filter_top_k=10_000),
    "rlprompt-rb": AgentConfig(replay=True, reward_new_range=(0.0, 20.0)),
}

# Best-prompt selection of each preset: PIN's trainer keeps the greedy prompt with the highest mean
# validation reward (infer mode: the raw gap reward, no z-score); RLPrompt keeps none and reports
# the top prompts by validation accuracy. PIN's ablations and RLPrompt baselines ran in PIN's code.
SELECTION = {name: "accuracy" if name == "rlprompt" else "reward" for name in PRESETS}

def get_preset(name: str, **overrides) -> AgentConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
  return dataclasses.replace(PRESETS[name], **overrides)
