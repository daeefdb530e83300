"""`--paper`: one table of each paper's set-up, used by both launchers; explicit flags win; offline
it stops with one line naming the model it could not get."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from hpprompt import gradient
from hpprompt.agent.config import AgentConfig
from hpprompt.agent.config import PRESETS
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.launch import paper
from hpprompt.launch import soft_prompt
from tests.launch import official

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_method_has_a_paper_setup():
  assert set(PRESETS) | set(gradient.METHODS) == set(paper.PAPER)


def test_pin_and_rlprompt_setups():
  cfg = paper.apply(fewshot.FewShotConfig(method="pin"))
  assert (cfg.policy_lm, cfg.task_lm, cfg.steps, cfg.eval_every) == (
      "facebook/opt-125m", "roberta-large", 6000, 20)
  assert cfg.selection == "reward" and not cfg.calibrate and cfg.truncate
  assert cfg.agent == paper.SAMPLER
  agent = fewshot.agent_config(cfg)                        # the preset itself: PIN's settings
  assert (agent.prompt_length, agent.prompts_per_step, agent.replay_batch, agent.replay_capacity,
          agent.learning_rate, agent.filter_top_k, agent.loss) == (5, 16, 256, 64_000, 5e-5,
                                                                    10_000, "v1")
  assert not agent.exclude_special_tokens                  # the code samples them (SAMPLER)
  assert fewshot.agent_config(fewshot.FewShotConfig(method="pin")).exclude_special_tokens
  cfg = paper.apply(fewshot.FewShotConfig(method="rlprompt"))
  assert (cfg.policy_lm, cfg.task_lm, cfg.steps, cfg.eval_every, cfg.selection) == (
      "distilgpt2", "roberta-large", 12000, 10, "accuracy")


def test_explicit_settings_win():
  base = fewshot.FewShotConfig(method="pin", steps=7, task_lm="my/lm", agent={"prompt_length": 2})
  cfg = paper.apply(base, {"steps", "task_lm", "prompt_length"})
  assert (cfg.steps, cfg.task_lm, cfg.policy_lm, cfg.agent) == (
      7, "my/lm", "facebook/opt-125m", {"exclude_special_tokens": False, "prompt_length": 2})
  info = paper.apply(soft_prompt.BaselineConfig(method="infoprompt", options={"gamma": 0.5}),
                     {"gamma"})
  assert info.options == {"prompt_generator": True, "variational_head": True,
                          "weight_decay": 0.01, "warmup_fraction": 0.06, "linear_decay": True,
                          "gamma": 0.5}
  assert (info.batch_size, info.epochs, info.learning_rate, info.task_lm) == (
      8, 30, 1e-3, "roberta-large")
  assert paper.apply(soft_prompt.BaselineConfig(method="infoprompt", steps=3), {"steps"}).epochs \
      is None
  with pytest.raises(cli.FlagError, match="--method"):
    paper.apply(dataclasses.replace(fewshot.FewShotConfig(), method="ppo"))


def test_epochs_become_steps():
  cfg = soft_prompt.resolve_epochs(soft_prompt.BaselineConfig(epochs=30, batch_size=8))
  assert cfg.steps == 30 * 4                               # 32 SST-2 examples, batches of 8


@pytest.mark.slow
@pytest.mark.parametrize("script, model", [("fewshot_classification.py", "facebook/opt-125m"),
                                           ("soft_prompt.py", "roberta-large")])
def test_paper_offline_exits_2_naming_the_model(tmp_path, script, model):
  env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
         "PYTHONPATH": REPO}
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", script), "--paper",
                         f"--workdir={tmp_path}/w"], capture_output=True, text=True,
                        timeout=300, env=env)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and f"could not get '{model}'" in errors[0], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


# --- every --paper value against the official file it comes from (tests/launch/official.py) ---

AGENT_FIELDS = [f.name for f in dataclasses.fields(AgentConfig)]
# Agent settings a set-up never reads: on-policy RLPrompt has no replay buffer; the CLIP task
# z-scores nothing (tasks/textual_inversion.py passes its rewards as `shaped`, as clip_reward.py).
UNUSED = {"rlprompt": {"agent.replay_capacity", "agent.replay_batch"},
          "ti pin": {"agent.reward_zscore"}}
# Agent settings of hpprompt's own with no official counterpart: the starting prompt
# (`--init_prompt`, README "Starting from a known prompt"); --paper leaves it off.
HPPROMPT_ONLY = {"agent.init_prompt", "agent.init_prob"}
# --paper values that are hpprompt's own, with the reason (README "Deliberate differences").
DELIBERATE = {
    # `pin` is PIN's sparse method (algo=sparse-ql, as its style-transfer / CLIP commands run it);
    # the few-shot README command itself (algo=sql) is the `pin-readme` preset.
    ("fsc pin", "agent.regularizer"): "tsallis",
    ("fsc pin", "agent.loss"): "v1",
    ("fsc pin", "agent.sampling_top_k"): None,
    # RLPrompt keeps no best prompt; its paper reports the top prompts by validation accuracy.
    ("fsc rlprompt", "selection"): "accuracy",
}
# Values --paper sets that no official file has (hpprompt's offline components).
NOT_OFFICIAL = {("st pin", "classifier_pool"), ("st rlprompt", "classifier_pool"),
                ("ti pez", "eval_every")}    # PEZ's CLIP loop validates nothing (print_step 100)
OFFICIAL = {
    "fsc pin-readme": {**official.PIN_FSC_LAUNCH, **official.PIN_README_AGENT},
    "fsc pin": {**official.PIN_FSC_LAUNCH, **official.PIN_README_AGENT},
    "fsc rlprompt": official.RLP_FSC_ALL,
    "st pin": official.PIN_TST_ALL,
    "st rlprompt": official.RLP_TST_ALL,
    "ti pin": official.PIN_PIC_ALL,
    "ti pez": official.PEZ_CLIP,
    "soft infoprompt": official.INFOPROMPT,
    "soft pez": official.PEZ,
    "soft soft": official.SOFT,
}


def _flat(config: dict, agent: dict | None) -> dict:
  out = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()
         if k not in ("agent", "options")}
  out.update({f"options.{k}": v for k, v in config.get("options", {}).items()})
  out.update({f"agent.{k}": tuple(v) if isinstance(v, list) else v
              for k, v in (agent or {}).items()})
  return out


def _in_process(launcher, make) -> dict:
  """{set-up: (settings under --paper, settings without)} of the in-process launchers."""
  out = {}
  for method in ("pin-readme", "pin", "rlprompt"):
    cfg = paper.apply(fewshot.FewShotConfig(method=method))
    out[f"fsc {method}"] = (
        _flat(dataclasses.asdict(cfg), dataclasses.asdict(fewshot.agent_config(cfg))),
        _flat(dataclasses.asdict(fewshot.FewShotConfig(method=method)), None))
  for method in ("infoprompt", "pez", "soft"):
    base = soft_prompt.BaselineConfig(method=method)
    out[f"soft {method}"] = (_flat(dataclasses.asdict(paper.apply(base)), None),
                             _flat(dataclasses.asdict(base), None))
  return out


def _dumped(script: str, methods: list[str], prefix: str) -> dict:
  proc = subprocess.run([sys.executable, "-m", "tests.launch.paper_dump",
                         os.path.join(REPO, "experiments", script), *methods],
                        capture_output=True, text=True, timeout=300, cwd=REPO,
                        env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 0, proc.stderr[-2000:]
  dumped = json.loads(proc.stdout.strip().splitlines()[-1])
  return {f"{prefix} {m}": (_flat(d["paper"], d["agent"]), _flat(d["cpu"], None))
          for m, d in dumped.items()}


@pytest.fixture(scope="module")
def paper_settings() -> dict:
  out = _in_process(fewshot, paper.apply)
  out.update(_dumped("style_transfer.py", ["pin", "rlprompt"], "st"))
  out.update(_dumped("textual_inversion.py", ["pin", "pez"], "ti"))
  return out


@pytest.mark.parametrize("setup", sorted(OFFICIAL))
def test_every_paper_value_matches_the_official_file(paper_settings, setup):
  """Each value --paper gives equals the official one (table with its source file:line), except
  the listed deliberate ones; every value --paper changes is in the table, and every agent
  setting of an agent set-up is compared (or listed as unused there)."""
  got, cpu = paper_settings[setup]
  table = OFFICIAL[setup]
  for name, (value, source) in table.items():
    want = DELIBERATE.get((setup, name), value)
    assert got[name] == want, (f"{setup} {name}: --paper {got[name]!r}, official {value!r} "
                               f"({source})")
  changed = {k for k in got if not k.startswith("agent.") and got[k] != cpu.get(k)}
  unlisted = changed - set(table) - {n for s, n in NOT_OFFICIAL if s == setup}
  assert not unlisted, f"{setup}: --paper sets {sorted(unlisted)} without an official source"
  if any(k.startswith("agent.") for k in got):
    unused = UNUSED.get(setup.split(" ", 1)[1], set()) | UNUSED.get(setup, set())
    missing = {f"agent.{f}" for f in AGENT_FIELDS} - set(table) - unused - HPPROMPT_ONLY
    assert not missing, f"{setup}: agent settings without an official value {sorted(missing)}"
    assert got.get("agent.init_prompt") is None, f"{setup}: --paper starts from a prompt"


def test_paper_samples_special_tokens_in_every_agent_setup(paper_settings):
  """No official sampler excludes special tokens; --paper follows the code in all five set-ups."""
  agent_setups = [s for s, (got, _) in paper_settings.items()
                  if "agent.exclude_special_tokens" in got]
  assert len(agent_setups) == 6       # fsc pin-readme / pin / rlprompt, st pin / rlprompt, ti pin
  for setup in agent_setups:
    assert paper_settings[setup][0]["agent.exclude_special_tokens"] is False, setup
