r"""One training step of the official RLPrompt and PIN few-shot code, rebuilt in torch/transformers.

The reference side of `agent_bench.py --paper` (run in its own process, so that its peak memory is
its own). It mirrors, call for call, what one `Trainer._train_step` of the official code computes:

* rlprompt: mingkaid/rl-prompt @ 30528c2, `examples/few-shot-classification/run_fsc.py` with
  fsc_config.yaml (`SQLModule`, training_mode sql-onpolicy, sql_loss_impl v2_v2r_v3_v3r, top_k 256,
  reward shaping [0, 1] -> [0, 5], Adam 5e-5, clip 5.0, polyak 0.001 over the whole target
  model).
* pin: Youseob/PIN @ 3357f09 with the `pin` preset's algorithm (`algo=sparse-ql
  training_mode=sparse-ql-offpolicy loss_impl=v1 fluent=true fluent_top_k=10000
  off_train_batch_size=256`: `SPARSE_QL_Module` + `LMFilterModel`: sparsemax sampling over the
  filtered logits, replay buffer of 64,000, polyak 0.001 over the target MLP). The replay buffer
  is topped up by repeating the stored trajectories until it holds 256, so that every step learns
  on a full replay batch, as every step after the 16th of a run does.

Per step: (sample) the policy LM with the MLP head decodes 16 prompts x 5 tokens, one cached
forward per token after re-tokenizing each sampled token's string, as `_get_generation_cache` does
(RLPrompt also runs the target model's `teacher_forcing`); (reward) `PromptedClassificationReward`:
for each prompt a batch of the 32 training sentences, padded to its longest, the full MLM forward
(all positions, whole vocabulary), the logits at <mask> and the verbalizers, the piecewise gap
reward (200 / 180), then the z-score over the step's prompts; (learn) the loss, backward, gradient
clipping, Adam and the target update. Printing and wandb logging are left out.

  python benchmarks/official_step.py --row=rlprompt --policy=DIR --task_lm=DIR --steps=2 \
      --out=times.json
"""
import argparse
import copy
import json
import resource
import time
import warnings

import numpy as np
import torch
import transformers
from torch import nn

from hpprompt.tasks import data

warnings.filterwarnings("ignore", category=FutureWarning)    # transformers' past_key_values notice
transformers.logging.set_verbosity_error()

TEMPLATE = "{sentence_1} {prompt} <mask> ."
VERBALIZERS = ("\u0120terrible", "\u0120great")     # fsc_helpers.get_dataset_verbalizers('sst-2')
PROMPTS, PROMPT_LENGTH, MLP_HIDDEN, FLUENT_TOP_K = 16, 5, 2048, 10_000
ROWS = {  # row -> (source string of the policy, reward shaping new max, replay batch)
    "rlprompt": (None, 5.0, None),      # None: the policy tokenizer's end-of-text token
    "pin": ("facebook/opt-125m", 1.0, 256),   # PIN passes `config.policy_lm` as the source string
}


class Policy(nn.Module):
  """rl-prompt's `LMAdaptorModel` (pin: PIN's `LMFilterModel`): frozen LM + MLP + the LM's head."""

  def __init__(self, model_dir: str, fluent_top_k: int | None):
    super().__init__()
    self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    self.lm = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    for p in self.lm.parameters():
      p.requires_grad = False
    dim = self.lm.config.hidden_size
    self.mlp = nn.Sequential(nn.Linear(dim, MLP_HIDDEN), nn.ReLU(), nn.Linear(MLP_HIDDEN, dim))
    for m in self.mlp:
      if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight, gain=0.0001)
        m.bias.data.fill_(-0.0001)
    self.fluent_top_k = fluent_top_k
    self.target_mlp = copy.deepcopy(self.mlp) if fluent_top_k else None   # PIN keeps one

  def cache(self, texts, past=None):
    """`_get_generation_cache`: tokenize (padded, no attention mask), one cached forward, the
    hidden state at each row's last real token."""
    enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    body = self.lm.model if hasattr(self.lm, "model") else self.lm.transformer   # OPT / GPT-2
    out = body(enc["input_ids"], past_key_values=past, use_cache=True)
    last = enc["attention_mask"].sum(1) - 1
    return out.last_hidden_state[torch.arange(len(texts)), last], out.past_key_values

  def head(self, state, target=False):
    """`_mlp_forward`: logits of the MLP's output through the LM head; PIN: the fluency filter."""
    if target:
      with torch.no_grad():
        out = self.target_mlp(state)
    else:
      out = self.mlp(state)
    logits = self.lm.lm_head(out)
    if not self.fluent_top_k:
      return logits, None
    lm_logits = self.lm.lm_head(state)
    min_values = torch.topk(lm_logits, k=self.fluent_top_k).values[..., -1:]
    return torch.where(lm_logits < min_values, torch.full_like(logits, -1000.0), logits), \
        ~(lm_logits < min_values)

  def token_strings(self, actions):
    tokens = self.tokenizer.convert_ids_to_tokens(actions.tolist())
    tokens = [t if t is not None else self.tokenizer.pad_token for t in tokens]
    return tokens, [self.tokenizer.convert_tokens_to_string([t]) for t in tokens]

  def sample(self, source: str):
    """`sample` of 16 prompts: states [P, T, d], logits [P, T, V], ids [P, T], tokens."""
    state, past = self.cache([source] * PROMPTS)
    states, ids, logits_all, tokens = [], [], [], [[] for _ in range(PROMPTS)]
    for _ in range(PROMPT_LENGTH):
      logits, mask = self.head(state)
      if self.fluent_top_k:                  # PIN: sparsemax probabilities over the filter
        tau = sparsemax_tau(logits[:, None, :])[0][:, 0]
        probs = torch.clamp(logits - tau[:, None], min=0.0)
        if (probs - probs * mask).any():
          raise RuntimeError("sparsemax support outside the filter")
        actions = torch.distributions.Categorical(probs=probs).sample()
      else:                                  # RLPrompt: top-256 of the policy logits
        kth = torch.topk(logits, k=256).values[:, -1:]
        filtered = torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)
        actions = torch.distributions.Categorical(logits=filtered).sample()
      toks, strs = self.token_strings(actions)
      for row, t in zip(tokens, toks):
        row.append(t)
      states.append(state[:, None])
      ids.append(actions[:, None])
      logits_all.append(logits[:, None])
      state, past = self.cache(strs, past)
    return torch.cat(states, 1), torch.cat(logits_all, 1), torch.cat(ids, 1), tokens

  def teacher_forcing(self, source: str, ids):
    """RLPrompt's target model re-reads the sampled ids (`teacher_forcing`): logits [P, T, V]."""
    state, past = self.cache([source] * PROMPTS)
    out = []
    for i in range(ids.shape[1]):
      out.append(self.head(state)[0][:, None])
      state, past = self.cache(self.token_strings(ids[:, i])[1], past)
    return torch.cat(out, 1)


def sparsemax_tau(logits):
  """PIN's `sparse_max_normalized` / `sparse_max_operator` threshold (sort-based) over [..., V]."""
  values = torch.sort(logits).values
  cumsum = values.flip(dims=[-1]).cumsum(-1).flip(dims=[-1])
  k = torch.arange(logits.shape[-1], 0, -1, dtype=logits.dtype)
  support = k * values + 1 > cumsum
  return ((support * values).sum(-1) - 1.0) / support.sum(-1), support, values


class OfficialReward:
  """`PromptedClassificationReward.forward` (train mode, z-scored) on one masked task LM."""

  def __init__(self, model_dir: str):
    self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    self.model = transformers.AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    self.verbalizer_ids = self.tokenizer.convert_tokens_to_ids(list(VERBALIZERS))
    if self.tokenizer.unk_token_id in self.verbalizer_ids:
      raise ValueError(f"{model_dir}: the verbalizers {VERBALIZERS} are not single tokens")
    self.batches = []              # (padded length, real lengths) of each forward: its FLOPs

  @torch.no_grad()
  def logits(self, texts):
    enc = self.tokenizer(texts, padding="longest", truncation=True, return_tensors="pt",
                         add_special_tokens=True)
    self.batches.append((enc["input_ids"].shape[1], enc["attention_mask"].sum(1).tolist()))
    token_logits = self.model(**enc).logits
    mask_index = torch.where(enc["input_ids"] == self.tokenizer.mask_token_id)[1]
    return token_logits[torch.arange(len(texts)), mask_index, :]

  def class_logits(self, sources, prompt: str):
    """Verbalizer logits [N, C] of one prompt: one batch of all the sources."""
    template = TEMPLATE.replace("<mask>", self.tokenizer.mask_token)
    texts = [template.format(sentence_1=s, prompt=prompt) for s in sources]
    return self.logits(texts)[:, self.verbalizer_ids]

  def __call__(self, sources, labels, prompt_tokens):
    """(z-scored rewards [P], raw gap rewards [P]) of the prompts (token lists) on the sources."""
    rewards = []
    for tokens in prompt_tokens:
      prompt = self.tokenizer.convert_tokens_to_string(tokens)
      class_probs = torch.softmax(self.class_logits(sources, prompt), -1)
      rewards.append(gap_reward(class_probs, labels))
    raw = torch.stack(rewards)
    values = raw.numpy()
    return (raw - float(np.mean(values))) / (float(np.std(values)) + 1e-4), raw


def gap_reward(class_probs, labels, correct_coeff=200.0, incorrect_coeff=180.0):
  """The piecewise gap reward of one prompt, averaged over its batch (rl-prompt's fsc_reward)."""
  label_probs = class_probs[torch.arange(len(labels)), labels]
  not_label = torch.where(class_probs == label_probs[:, None], torch.tensor([-1.0]), class_probs)
  gap = label_probs - not_label.max(-1).values
  correct = (gap > 0).long()
  return (gap * (correct_coeff * correct + incorrect_coeff * (1 - correct))).mean()


def sql_v2_v3_loss(logits, logits_, actions, rewards):
  """rl-prompt's `v2_v2r_v3_v3r` (coefficient None): (v2 + v3) / 2, summed over the 5 steps,
  averaged over prompts (`mask_and_reduce`; every prompt has the full length)."""
  q = logits.gather(-1, actions[..., None])[..., 0]
  v, v_ = logits.logsumexp(-1), logits_.logsumexp(-1)
  a = q - v
  a_ = torch.cat([v_[:, 1:] - v_[:, :-1], (rewards - v_[:, -1])[:, None]], 1)
  for x in (logits, logits_):                            # the entropies the official code logs
    p = torch.softmax(x, -1) + 1e-8
    (-(p * p.log()).sum(-1)).mean().item()
  v2 = (a - a_) ** 2
  v3 = (a.flip(-1).cumsum(-1).flip(-1) - (rewards[:, None] - v_)) ** 2
  return ((v2 + v3) / 2).sum(1).mean()


def sparse_ql_v1_loss(logits, masks, logits_, masks_, actions, rewards):
  """PIN's `sparse_ql_loss_1` (gamma 1): Q_t onto R; the spmax values it computes and logs."""
  q = logits.gather(-1, actions[..., None])[..., 0]
  for z, m in ((logits, masks), (logits_, masks_)):        # `sparse_max_operator`, logged only
    tau, support, values = sparsemax_tau(z)
    if not ((m.sum(-1) + 1) > support.sum(-1)).all():
      raise RuntimeError("sparsemax support larger than the filter")
    (((support * values) ** 2 - tau[..., None] ** 2) * support).sum(-1).mean().item()
  return ((q - rewards[:, None]) ** 2).sum(1).mean()


class OfficialStep:
  """The official module + trainer state of one row; `step()` returns (sample, reward, learn) s."""

  def __init__(self, row: str, policy_dir: str, task_dir: str, seed: int = 0):
    torch.manual_seed(seed)
    np.random.seed(seed)
    self.row = row
    source, self.shaping_max, self.replay_batch = ROWS[row]
    vocab = transformers.AutoConfig.from_pretrained(policy_dir).vocab_size
    top_k = min(FLUENT_TOP_K, vocab // 2)                 # tiny test vocabularies: half of them
    self.policy = Policy(policy_dir, fluent_top_k=top_k if row == "pin" else None)
    self.source = source or self.policy.tokenizer.eos_token
    self.target = copy.deepcopy(self.policy) if row == "rlprompt" else None
    self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=5e-5)
    self.reward = OfficialReward(task_dir)
    train = data.load_few_shot("sst-2", 0, "train")
    self.sources = [e.text for e in train]
    self.labels = torch.tensor([e.label for e in train])
    self.buffer = {k: np.zeros((64_000, *s), d) for k, s, d in (
        ("states", (PROMPT_LENGTH, self.policy.lm.config.hidden_size), np.float32),
        ("ids", (PROMPT_LENGTH,), np.int64), ("reward", (), np.float32))}
    self.size = self.pointer = 0

  def _polyak(self, rate=0.001):
    """`_pre_steps`: RLPrompt: every parameter of the target model (LM included); PIN: the MLP."""
    pairs = (zip(self.target.parameters(), self.policy.parameters()) if self.target is not None
             else zip(self.policy.target_mlp.parameters(), self.policy.mlp.parameters()))
    for p_, p in pairs:
      p_.data.copy_((1 - rate) * p_ + rate * p)

  def add(self, states, ids, rewards):
    n = len(ids)
    idx = (self.pointer + np.arange(n)) % 64_000
    self.buffer["states"][idx], self.buffer["ids"][idx] = states.numpy(), ids.numpy()
    self.buffer["reward"][idx] = rewards.numpy()
    self.pointer, self.size = (self.pointer + n) % 64_000, min(self.size + n, 64_000)

  def step(self, scored: int = PROMPTS):
    """One step; `scored` < 16 (the warm-up step) scores only that many prompts and reuses their
    rewards for the others."""
    for module in (self.policy, self.target):   # `self.module.train()`: the target model too; the
      if module is not None:                     # reward's LM is no submodule and stays in eval
        module.train()
    self._polyak()
    t0 = time.perf_counter()
    states, logits, ids, tokens = self.policy.sample(self.source)
    logits_ = self.target.teacher_forcing(self.source, ids) if self.target is not None else None
    t1 = time.perf_counter()
    z, _ = self.reward(self.sources, self.labels, tokens[:scored])
    shaped = z.repeat(PROMPTS // scored + 1)[:PROMPTS] * self.shaping_max   # [0, 1] -> [0, max]
    t2 = time.perf_counter()
    if self.replay_batch:
      self.add(states.detach(), ids, shaped)
      self.fill_buffer()
      idx = np.random.randint(0, self.size, self.replay_batch)
      states = torch.tensor(self.buffer["states"][idx]).float()
      ids = torch.tensor(self.buffer["ids"][idx]).long()
      rewards = torch.tensor(self.buffer["reward"][idx]).float()
      logits, masks = self.policy.head(states)
      logits_, masks_ = self.policy.head(states, target=True)
      loss = sparse_ql_v1_loss(logits, masks, logits_, masks_, ids, rewards)
    else:
      loss = sql_v2_v3_loss(logits, logits_, ids, shaped.float())
    loss.backward()
    nn.utils.clip_grad_norm_(self.policy.parameters(), 5.0)
    self.optimizer.step()
    self.optimizer.zero_grad()
    return t1 - t0, t2 - t1, time.perf_counter() - t2

  def fill_buffer(self):
    """PIN learns once 256 trajectories are stored (16 steps in); the stored ones are repeated
    until there are 256, so that every step is a steady-state step with a full replay batch."""
    while self.size < self.replay_batch:
      self.add(*(torch.tensor(self.buffer[k][:self.size]) for k in ("states", "ids", "reward")))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--row", required=True, choices=tuple(ROWS))
  parser.add_argument("--policy", required=True, help="causal policy LM directory")
  parser.add_argument("--task_lm", required=True, help="masked task LM directory")
  parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step "
                      "(which scores 2 prompts: torch compiles nothing, it only warms up)")
  parser.add_argument("--out", help="write the times as JSON here")
  args = parser.parse_args()
  step = OfficialStep(args.row, args.policy, args.task_lm)
  times = []
  for i in range(args.steps + 1):               # step 0: warm-up, scoring 2 of the 16 prompts
    step.reward.batches.clear()
    times.append(step.step(scored=2 if i == 0 else PROMPTS))
    print(f"  official {args.row} step {i}: sample {times[-1][0]:.2f} s, reward "
          f"{times[-1][1]:.2f} s, learn {times[-1][2]:.2f} s", flush=True)
  result = dict(times=times[1:], batches=step.reward.batches, threads=torch.get_num_threads(),
                rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                torch=torch.__version__, transformers=transformers.__version__)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(result, f)


if __name__ == "__main__":
  main()
