"""A starting prompt (`init_prompt`) end to end on tiny models: the warmed-up greedy prompt is the
starting prompt, it is scored on dev as step 0 and the selected prompt is never worse on dev, an
interrupted run resumes to where an uninterrupted one ends, and bad prompts name the flag."""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from hpprompt.agent import agent as agent_lib
from hpprompt.agent import trainer
from hpprompt.launch import cli
from hpprompt.launch import fewshot
from hpprompt.models import hub
from tests import launch_utils
from tests.agent.launcher_test import _cfg
from tests.agent.launcher_test import _metrics

pytestmark = pytest.mark.slow
FILTER_K = 50


@pytest.fixture(scope="module")
def start(tiny_gpt2_dir) -> str:
  """A 2-token prompt inside PIN's top-50 filter of the tiny LM (so the policy may emit it), that
  the tokenizer spells back: each token the most likely such one after the previous ones."""
  lm, tok = hub.load_pretrained(tiny_gpt2_dir)
  ids, out = [tok.token_to_id("<s>")], []
  for _ in range(2):
    logits = np.asarray(lm(jnp.asarray([ids])).logits[0, -1])
    token = next(int(c) for c in np.argsort(-logits)[:FILTER_K] if c not in tok.special_ids()
                 and tok.encode(tok.decode(out + [int(c)])) == out + [int(c)])
    out.append(token)
    ids.append(token)
  return tok.decode(out)


def _start_cfg(model_dir, workdir, prompt, method="pin", **kw):
  cfg = _cfg(model_dir, workdir, **kw)
  agent = {**cfg.agent, "init_prompt": prompt}
  if method == "rlprompt":     # softmax over the top 20 of the filtered Q-values
    agent.update(sampling_top_k=20)
  return dataclasses.replace(cfg, method=method, agent=agent)


@pytest.mark.parametrize("method", ["pin", "rlprompt"])
def test_first_greedy_prompt_is_the_starting_prompt(tiny_gpt2_dir, tmp_path, start, method):
  agent, _, _ = fewshot.build(_start_cfg(tiny_gpt2_dir, tmp_path / "w", start, method))
  fresh = agent.init(0)
  assert agent.decode(agent.greedy(fresh).tokens)[0] != start
  state, info = agent.warm_start(fresh)
  assert agent.decode(agent.greedy(state).tokens) == [start]
  assert min(info["init_token_probs"]) >= agent.cfg.init_prob and info["warm_start_steps"] > 0
  # the target head starts as the online head, the optimiser afresh
  np.testing.assert_array_equal(state.train.target_params["fc2"]["kernel"],
                                state.train.params["fc2"]["kernel"])
  assert int(state.train.step) == 0


def test_run_starts_from_the_prompt_and_never_selects_worse(tiny_gpt2_dir, tmp_path, start):
  results = fewshot.run(_start_cfg(tiny_gpt2_dir, tmp_path / "run", start))
  rows = _metrics(tmp_path / "run")
  assert [r["step"] for r in rows] == list(range(7))
  first = rows[0]
  assert first["greedy_prompt"] == start and first["warm_start_steps"] > 0
  scored = [(r["greedy_prompt"], r["dev_reward"]) for r in rows if "dev_reward" in r]
  assert results["best"]["score"] == max(s for _, s in scored) >= first["dev_reward"]
  if results["best"]["prompt"] == start:
    assert all(s <= first["dev_reward"] for _, s in scored)   # ties keep the starting prompt
  assert any(r["prompt"] == start and r["step"] == 0 for r in results["top_prompts"])


def test_interrupt_and_resume_equals_uninterrupted(tiny_gpt2_dir, tmp_path, monkeypatch, start):
  full = fewshot.run(_start_cfg(tiny_gpt2_dir, tmp_path / "full", start, checkpoint_every=2))
  restore = launch_utils.interrupt_on_call(monkeypatch, agent_lib.PromptAgent, "learn", 4,
                                           "keyboard_interrupt")
  with pytest.raises(trainer.Interrupted):
    fewshot.run(_start_cfg(tiny_gpt2_dir, tmp_path / "cut", start, checkpoint_every=2))
  restore()
  resumed = fewshot.run(_start_cfg(tiny_gpt2_dir, tmp_path / "cut", start, checkpoint_every=2,
                                   resume=True))
  assert _metrics(tmp_path / "cut") == _metrics(tmp_path / "full")
  assert resumed["best"] == full["best"] and resumed["top_prompts"] == full["top_prompts"]


@pytest.mark.parametrize("prompt,expected", [
    ("", "does not tokenise back"),
    (" good movie night", "is 6 tokens of the policy tokenizer, but the prompt length is 2"),
    ("<s><s>", "special or unknown token"),
    (None, "outside the top-50 tokens"),
])
def test_bad_starting_prompt_names_the_flag(tiny_gpt2_dir, tmp_path, start, prompt, expected):
  if prompt is None:      # the start's first token, then one the filter leaves out there
    lm, tok = hub.load_pretrained(tiny_gpt2_dir)
    first = tok.encode(start)[:1]
    logits = np.asarray(lm(jnp.asarray([[tok.token_to_id("<s>")] + first])).logits[0, -1])
    last = next(int(c) for c in np.argsort(logits) if c not in tok.special_ids()
                and tok.encode(tok.decode(first + [int(c)])) == first + [int(c)])
    prompt = tok.decode(first + [last])
  with pytest.raises(cli.FlagError) as e:
    fewshot.build(_start_cfg(tiny_gpt2_dir, tmp_path / "w", prompt))
  assert e.value.flag == "init_prompt" and expected in str(e.value), str(e.value)
