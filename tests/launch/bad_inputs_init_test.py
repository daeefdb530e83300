"""Bad values of the starting-prompt and grid-sharding flags (--init_prompt in every agent
launcher, --shard of the results grid): exit code 2, one line `error: ...` naming the flag, no
traceback, nothing written. The table runs through tests/launch/bad_inputs_test.py's machinery
(tests/launch/driver.py: each launcher's rows in one process)."""
import os

import pytest

from tests.launch import bad_inputs_test as bad

pytestmark = pytest.mark.slow
LAUNCHERS = {"few": "fewshot_classification.py", "style": "style_transfer.py",
             "ti": "textual_inversion.py", "grid": "results_grid.py"}
BASE = {
    "few": bad.BASE["few"],
    "style": ["--task_lm={T}", "--policy_lm={T}", "--source_token=<s>", "--steps=2",
              "--prompt_length=2", "--prompts_per_step=2", "--mlp_hidden=16", "--replay_batch=4",
              "--replay_capacity=16", "--filter_top_k=50", "--content_layer=1",
              "--classifier_pool=20", "--dev_limit=1", "--test_limit=1", "--num_samples=2",
              "--cache_dir={C}_cache", "--workdir={C}/w"],
    "ti": ["--workdir={C}/w"],
    "grid": ["--out={C}/g"],
}

# (launcher, case id, extra flags, text the error line must contain, set-up of the case folder)
CASES = [
    ("few", "init_prompt_length", ["--init_prompt= good movie night"],
     "' good movie night' is 6 tokens of the policy tokenizer, but the prompt length is 2", None),
    ("few", "init_prompt_empty", ["--init_prompt="], "--init_prompt: '' does not tokenise", None),
    ("few", "init_prompt_special", ["--init_prompt=<s><s>"], "special or unknown token", None),
    ("few", "init_prompt_outside_filter", ["--init_prompt= good movie"],
     "--init_prompt: token ' good' at position 1", None),
    ("few", "init_prompt_syntax", ["--init_prompt"], "init_prompt", None),
    ("style", "init_prompt_length", ["--init_prompt= good movie night"],
     "--init_prompt: ' good movie night' is 6 tokens", None),
    ("ti", "init_prompt_pez", ["--method=pez", "--init_prompt=a photo"],
     "--init_prompt: is an agent setting; --method=pez", None),
    ("grid", "shard_text", ["--shard=abc"], "--shard: must be I/N", None),
    ("grid", "shard_index_too_big", ["--shard=2/2"], "--shard: must be I/N", None),
    ("grid", "shard_negative", ["--shard=-1/2"], "--shard: must be I/N", None),
    ("grid", "shard_zero_machines", ["--shard=0/0"], "--shard: must be I/N", None),
    ("grid", "shard_three_parts", ["--shard=0/2/3"], "--shard: must be I/N", None),
    ("grid", "shard_no_count", ["--shard=1/"], "--shard: must be I/N", None),
    ("grid", "shard_with_report_only", ["--shard=0/2", "--report_only"],
     "--shard: --report_only reports the whole grid", None),
]


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_gpt2_dir, data_roots):
  root = tmp_path_factory.mktemp("bad_inputs_init")
  values = {"T": tiny_gpt2_dir, "D": data_roots["good"]}
  return bad.run_table(root, CASES, values, LAUNCHERS, BASE)


@pytest.mark.parametrize("launcher,name,extra,expected,kind", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input_is_one_line_exit_2(table, launcher, name, extra, expected, kind):
  del extra, kind
  result = table[(launcher, name)]
  lines = result["stderr"].splitlines()
  assert result["code"] == 2, result["stderr"][-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
  assert "Traceback" not in result["stderr"]
  assert expected in lines[0], lines[0]
  assert result["after"] == result["before"], "the failed run left files behind"


def test_every_launcher_has_rows():
  assert {c[0] for c in CASES} == set(LAUNCHERS) and os.path.basename(bad.__file__)
