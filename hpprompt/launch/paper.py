"""Each paper's few-shot set-up in one table: what `--paper` sets in every launcher.

`--paper` replaces the CPU-sized defaults by the paper's settings below; a flag given explicitly on
the command line still wins (`apply(cfg, explicit)`). The algorithm settings of the agent methods
(prompt length 5, 16 prompts a step, replay 64,000 / 256, lr 5e-5, filter k, loss, reward scale)
are the presets of `hpprompt.agent.config.PRESETS` themselves; `--paper` drops the launcher's CPU
overrides of them and samples special tokens as the code does (`SAMPLER`). Every value is checked
against the official file it comes from in tests/launch/paper_test.py (tables:
tests/launch/official.py). Sources: methods.md §1.6, §3.5 (the released configs and READMEs),
baselines.md §1.4 (InfoPrompt's code), §2.3-2.4 (PEZ as PIN re-ran it).

The paper models are downloaded from the Hugging Face Hub; without a network the run stops with
one line naming the model it could not get (`check_models`).
"""
import dataclasses

from hpprompt.launch import cli
from hpprompt.models import hub
from hpprompt.models.convert.core import ConversionError

# Every official sampler draws from the LM head as it is: special tokens included (PIN
# rlprompt/models/lm_adaptor_model.py:148-163, lm_filter_model.py:196-211; RLPrompt
# lm_adaptor_model.py:116-145). The CPU default excludes them (AgentConfig.exclude_special_tokens,
# README "Deliberate differences"); `--paper` follows the code in all five agent set-ups (few-shot,
# style transfer, textual inversion: `SAMPLER` is the agent base of those launchers under --paper).
SAMPLER = {"exclude_special_tokens": False}

# PIN few-shot (fsc_config.yaml + README): OPT-125m policy, RoBERTa-large masked-LM task LM with
# its template, 6,000 steps, validation on the whole dev set every 20 steps, best prompt by the
# mean validation reward (PIN's trainer, infer mode), no calibration, over-long inputs truncated
# (their tokenizer calls pass truncation=True).
PIN = {"policy_lm": "facebook/opt-125m", "task_lm": "roberta-large", "steps": 6000,
       "eval_every": 20, "selection": "reward", "calibrate": False, "truncate": True,
       "agent": dict(SAMPLER)}
# RLPrompt few-shot (fsc_config.yaml): distilgpt2 policy, RoBERTa-large, 12,000 steps, validation
# every 10 steps; RLPrompt keeps no best prompt (its paper reports the top prompts by validation
# accuracy), so accuracy selects here.
RLPROMPT = {"policy_lm": "distilgpt2", "task_lm": "roberta-large", "steps": 12000,
            "eval_every": 10, "selection": "accuracy", "calibrate": False, "truncate": True,
            "agent": dict(SAMPLER)}

PAPER: dict[str, dict] = {
    # Agent presets (experiments/fewshot_classification.py). PIN's ablations and its RLPrompt
    # variants (Sec. 5.3: RLPrompt-fluency, RLPrompt-RB, PIN-no-fluency; RLPrompt re-run with the
    # OPT-125m policy) ran in PIN's set-up; plain `rlprompt` is RLPrompt's own.
    "pin": PIN, "pin-readme": PIN, "pin-td": PIN, "pin-v2v3": PIN, "pin-no-fluency": PIN,
    "rlprompt-fluency": PIN, "rlprompt-rb": PIN,
    "rlprompt": RLPROMPT,
    # Gradient baselines (experiments/soft_prompt.py), RoBERTa-large with the masked-LM template.
    # InfoPrompt's released code: prompt generator + variational head, AdamW lr 1e-3 (weight decay
    # 0.01), 6% linear warm-up then linear decay, batch 8, 30 epochs (= 30 x 32 / 8 = 120 steps on
    # a 32-example 16-shot binary set; `epochs` turns into steps at run time), n_prompt 1 vector in
    # each of its 4 slots (here: one slot of 4 vectors).
    "infoprompt": {"task_lm": "roberta-large", "prompt_length": 4, "batch_size": 8, "epochs": 30,
                   "learning_rate": 1e-3, "calibrate": False,
                   "options": {"prompt_generator": True, "variational_head": True,
                               "weight_decay": 0.01, "warmup_fraction": 0.06,
                               "linear_decay": True}},
    # PEZ as PIN re-ran it (App. B.3): 5 tokens, batch 16, RoBERTa-large, [x] [z] [MASK]; PEZ's LM
    # code trains 5,000 steps and validates every 100 (its Adafactor lr 0.3 is not used: AdamW).
    # Initialisation from the class-label words, as its LM code (`initialize_from_classes`; it
    # repeats them to fill L, here the other positions are sampled vocabulary rows).
    "pez": {"task_lm": "roberta-large", "prompt_length": 5, "batch_size": 16, "steps": 5000,
            "eval_every": 100, "init": "class", "calibrate": False},
    # Soft prompt tuning as the RLPrompt/PIN tables quote it: 5 vectors on RoBERTa-large (the
    # optimiser and steps of that baseline are not given; the launcher's own are kept).
    "soft": {"task_lm": "roberta-large", "prompt_length": 5, "calibrate": False},
}


def setup(method: str) -> dict:
  with cli.flag("method"):
    if method not in PAPER:
      raise ValueError(f"no paper set-up for method {method!r}; known: {sorted(PAPER)}.")
  return PAPER[method]


def apply(cfg, explicit: set[str] | frozenset = frozenset()):
  """`cfg` (a launcher's frozen config) with its method's paper settings, except the fields named
  in `explicit` (flags the user gave). `agent`/`options` dicts are merged, explicit keys winning."""
  paper = setup(cfg.method)
  fields = {f.name for f in dataclasses.fields(cfg)}
  changes = {}
  for name, value in paper.items():
    if name not in fields or (name == "epochs" and "steps" in explicit):
      continue
    if name in ("agent", "options"):
      current = getattr(cfg, name)
      changes[name] = {**value, **{k: v for k, v in current.items() if k in explicit}}
    elif name not in explicit:
      changes[name] = value
  return dataclasses.replace(cfg, **changes)


def first_line(message: str) -> str:
  return " ".join(str(message).split("\n", 1)[0].split())


def check_models(cfg) -> None:
  """Fetches (or finds in the local cache) every Hub model `cfg` names; the first one that cannot be
  got stops the run with one line naming it and its flag."""
  for flag_name in ("policy_lm", "task_lm"):
    name = getattr(cfg, flag_name, None)
    if name is None or name == "smollm2":
      continue
    try:
      hub.resolve(name)
    except ConversionError as e:
      why = type(e.__cause__).__name__ if e.__cause__ is not None else first_line(e)[:120]
      raise cli.FlagError(flag_name, f"could not get {name!r} from the Hugging Face Hub ({why}: "
                          f"no network, or not there); pass a local directory with "
                          f"--{flag_name}.") from e
