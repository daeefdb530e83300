"""Bad inputs to every launcher: exit code 2, one line `error: ...` naming the flag or file, no
traceback, nothing written. Each launcher runs its whole table in one process
(tests/launch/driver.py) on the tiny models; `{T}`/`{R}` are the tiny GPT-2 / RoBERTa, `{D}` good
data, `{C}` the case's own folder, `{data:x}` / `{model:x}` the broken inputs of
tests/launch/conftest.py."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHERS = {"few": "fewshot_classification.py", "soft": "soft_prompt.py",
             "eval": "evaluate_prompt.py"}
BASE = {
    "few": ["--task_lm={T}", "--policy_lm={T}", "--source_token=<s>", "--steps=2",
            "--prompt_length=2", "--prompts_per_step=4", "--mlp_hidden=16", "--replay_batch=4",
            "--replay_capacity=16", "--filter_top_k=50", "--data_dir={D}", "--workdir={C}/w"],
    "soft": ["--task_lm={T}", "--steps=2", "--prompt_length=2", "--data_dir={D}",
             "--workdir={C}/w"],
    "eval": ["--task_lm={T}", "--data_dir={D}", "--split=dev"],
}
LONG_PROMPT = " good" * 600

# (launcher, case id, extra flags, text the error line must contain, set-up of the case folder)
CASES = [
    # flag syntax (absl parsing)
    ("few", "steps_abc", ["--steps=abc"], "--steps", None),
    ("few", "unknown_flag", ["--colour=red"], "colour", None),
    ("few", "bool_value", ["--calibrate=maybe"], "calibrate", None),
    ("few", "dtype_enum", ["--dtype=float16"], "dtype", None),
    # counts and numbers
    ("few", "steps_0", ["--steps=0"], "--steps", None),
    ("few", "eval_every_0", ["--eval_every=0"], "--eval_every", None),
    ("few", "log_every_0", ["--log_every=0"], "--log_every", None),
    ("few", "checkpoint_every_negative", ["--checkpoint_every=-1"], "--checkpoint_every", None),
    ("few", "learning_rate_nan", ["--learning_rate=nan"], "--learning_rate", None),
    ("few", "learning_rate_negative", ["--learning_rate=-1"], "--learning_rate", None),
    ("few", "learning_rate_inf", ["--learning_rate=inf"], "--learning_rate", None),
    ("few", "learning_rate_zero", ["--learning_rate=0"], "--learning_rate", None),
    ("few", "prompt_length_0", ["--prompt_length=0"], "--prompt_length", None),
    ("few", "prompts_per_step_0", ["--prompts_per_step=0"], "--prompts_per_step", None),
    ("few", "mlp_hidden_0", ["--mlp_hidden=0"], "--mlp_hidden", None),
    ("few", "replay_batch_over_capacity", ["--replay_batch=64"], "--replay_batch", None),
    ("few", "loss", ["--loss=v9"], "--loss", None),
    ("few", "method", ["--method=ppo"], "--method", None),
    ("few", "filter_top_k_over_vocab", ["--filter_top_k=100000"], "--filter_top_k", None),
    ("few", "sampling_top_k_over_vocab", ["--method=rlprompt", "--filter_top_k=0",
                                          "--sampling_top_k=100000"],
     "--sampling_top_k", None),
    ("few", "prompt_past_policy_context", ["--prompt_length=600"], "policy LM's 512", None),
    ("few", "prompt_past_task_context", ["--prompt_length=500"], "task LM's 512", None),
    ("few", "num_devices", ["--num_devices=99"], "--num_devices", None),
    # data
    ("few", "dataset", ["--dataset=nope"], "--dataset", None),
    ("few", "dataset_seed", ["--dataset_seed=7"], "--dataset_seed", None),
    ("few", "tfds_set", ["--dataset=glue/rte"], "--dataset", None),
    ("few", "data_dir_missing", ["--data_dir={C}/nowhere"], "--data_dir", None),
    ("few", "label_not_integer", ["--data_dir={data:bad_label}"], "train.tsv:6", None),
    ("few", "label_out_of_range", ["--data_dir={data:label_range}"], "dev.tsv:4", None),
    ("few", "bytes_not_utf8", ["--data_dir={data:bad_bytes}"], "train.tsv:8", None),
    ("few", "empty_dev_split", ["--data_dir={data:empty_dev}"], "dev.tsv", None),
    ("few", "bad_columns", ["--data_dir={data:bad_columns}"], "train.tsv", None),
    ("few", "wrong_field_count", ["--data_dir={data:wrong_fields}"], "train.tsv:5", None),
    # verbalizers and templates
    ("few", "one_verbalizer_two_classes", ["--verbalizers=great"], "--verbalizers", None),
    ("few", "emoji_verbalizers", ["--verbalizers=\U0001F600,\U0001F621"], "--verbalizers", None),
    ("few", "repeated_verbalizers", ["--verbalizers=great,great"], "--verbalizers", None),
    ("few", "template_without_prompt", ["--template={sentence_1} It was"], "--template", None),
    ("few", "template_pair_slot", ["--template={sentence_1} {sentence_2} {prompt}"], "--template",
     None),
    ("few", "template_mask_for_causal", ["--template={sentence_1} {prompt} <mask>"], "--template",
     None),
    # models
    ("few", "task_lm_missing_path", ["--task_lm=/nonexistent/model"], "no such directory", None),
    ("few", "policy_lm_relative_missing", ["--policy_lm=./no/such/model"], "--policy_lm", None),
    ("few", "truncated_safetensors", ["--task_lm={model:truncated}"], "model.safetensors", None),
    ("few", "malicious_bin", ["--task_lm={model:malicious}"], "pytorch_model.bin", None),
    ("few", "broken_bin", ["--task_lm={model:broken_bin}"], "pytorch_model.bin", None),
    ("few", "invalid_config_json", ["--task_lm={model:bad_config}"], "config.json", None),
    ("few", "config_json_not_object", ["--policy_lm={model:list_config}"], "config.json", None),
    ("few", "unknown_model_type", ["--task_lm={model:unknown_type}"], "model_type", None),
    ("few", "no_tokenizer", ["--task_lm={model:no_tokenizer}"], "tokenizer", None),
    ("few", "broken_tokenizer", ["--task_lm={model:broken_tokenizer}"], "tokenizer", None),
    ("few", "model_is_a_file", ["--task_lm={model:file}"], "--task_lm", None),
    ("few", "policy_not_causal", ["--policy_lm={R}"], "--policy_lm", None),
    ("few", "source_token_unknown", ["--source_token=<nope>"], "--source_token", None),
    # run directory
    ("few", "workdir_is_file", [], "--workdir", "file_w"),
    ("few", "workdir_under_file", ["--workdir={C}/f/w"], "f is a file, so", "file_f"),
    ("few", "resume_empty_dir", ["--resume"], "--resume", "empty_w"),
    ("few", "resume_no_dir", ["--resume"], "--resume", None),
    ("few", "workdir_holds_run", [], "--workdir", "run_w"),
    ("few", "resume_other_config", ["--resume"], "--resume", "run_w"),
    # soft prompts, InfoPrompt, PEZ
    ("soft", "learning_rate_abc", ["--learning_rate=abc"], "learning_rate", None),
    ("soft", "steps_0", ["--steps=0"], "--steps", None),
    ("soft", "batch_size_0", ["--batch_size=0"], "--batch_size", None),
    ("soft", "prompt_length_0", ["--prompt_length=0"], "--prompt_length", None),
    ("soft", "learning_rate_negative", ["--learning_rate=-1"], "--learning_rate", None),
    ("soft", "learning_rate_nan", ["--learning_rate=nan"], "--learning_rate", None),
    ("soft", "learning_rate_inf", ["--learning_rate=inf"], "--learning_rate", None),
    ("soft", "target_accuracy_2", ["--target_train_acc=2"], "--target_train_acc", None),
    ("soft", "target_accuracy_nan", ["--target_train_acc=nan"], "--target_train_acc", None),
    ("soft", "method", ["--method=ppo"], "--method", None),
    ("soft", "init_scale_0", ["--init=uniform", "--init_scale=0"], "--init_scale", None),
    ("soft", "weight_decay_nan", ["--weight_decay=nan"], "--weight_decay", None),
    ("soft", "logp_floor", ["--method=infoprompt", "--logp_floor=abc"], "--logp_floor", None),
    ("soft", "option_of_other_method", ["--variational_head"], "--variational_head", None),
    ("soft", "k_per_class_few_shot", ["--k_per_class=8"], "--k_per_class", None),
    ("soft", "tfds_without_k", ["--dataset=glue/rte"], "--k_per_class", None),
    ("soft", "prompt_past_context", ["--prompt_length=500"], "task LM's 512", None),
    ("soft", "label_not_integer", ["--data_dir={data:bad_label}"], "train.tsv:6", None),
    ("soft", "empty_dev_split", ["--data_dir={data:empty_dev}"], "dev.tsv", None),
    ("soft", "data_dir_is_file", ["--data_dir={model:file}"], "a_file is not a directory", None),
    ("soft", "three_verbalizers", ["--verbalizers=a,b,c"], "--verbalizers", None),
    ("soft", "template_unknown_slot", ["--template={foo} {sentence_1} {prompt}"], "--template",
     None),
    ("soft", "truncated_safetensors", ["--task_lm={model:truncated}"], "model.safetensors", None),
    ("soft", "malicious_bin", ["--task_lm={model:malicious}"], "pytorch_model.bin", None),
    ("soft", "invalid_config_json", ["--task_lm={model:bad_config}"], "config.json", None),
    ("soft", "workdir_is_file", [], "--workdir", "file_w"),
    ("soft", "resume_no_checkpoint", ["--resume"], "--resume", None),
    # prompt evaluation
    ("eval", "no_prompt", [], "--prompt", None),
    ("eval", "unknown_flag", ["--prompt=a", "--steps=3"], "steps", None),
    ("eval", "split_enum", ["--prompt=a", "--split=valid"], "split", None),
    ("eval", "dataset", ["--prompt=a", "--dataset=nope"], "--dataset", None),
    ("eval", "dataset_seed", ["--prompt=a", "--dataset_seed=9"], "--dataset_seed", None),
    ("eval", "bytes_not_utf8", ["--prompt=a", "--data_dir={data:bad_bytes}", "--split=train"],
     "train.tsv:8", None),
    ("eval", "no_test_split", ["--prompt=a", "--data_dir={data:no_test}", "--split=test"],
     "--split", None),
    ("eval", "empty_dev_split", ["--prompt=a", "--data_dir={data:empty_dev}"], "dev.tsv", None),
    ("eval", "one_verbalizer", ["--prompt=a", "--verbalizers=great"], "--verbalizers", None),
    ("eval", "template_no_slots", ["--prompt=a", "--template=no slots"], "--template", None),
    ("eval", "task_lm_missing_path", ["--prompt=a", "--task_lm=/nonexistent/model"],
     "no such directory", None),
    ("eval", "truncated_safetensors", ["--prompt=a", "--task_lm={model:truncated}"],
     "model.safetensors", None),
    ("eval", "malicious_bin", ["--prompt=a", "--task_lm={model:malicious}"], "pytorch_model.bin",
     None),
    ("eval", "broken_tokenizer", ["--prompt=a", "--task_lm={model:broken_tokenizer}"],
     "tokenizer", None),
    ("eval", "reference_not_causal", ["--prompt=a", "--reference_lm={R}"], "--reference_lm", None),
    ("eval", "reference_missing", ["--prompt=a", "--reference_lm=/nonexistent/ref"],
     "--reference_lm", None),
    ("eval", "prompt_past_context", ["--prompt=" + LONG_PROMPT], "--prompt", None),
    ("eval", "prompt_not_utf8", ["--prompt=\udcff\udcfe"], "--prompt", None),
    ("eval", "output_is_directory", ["--prompt=a", "--output={C}/out"], "--output", "dir_out"),
    ("eval", "output_under_file", ["--prompt=a", "--output={C}/f/r.json"], "--output", "file_f"),
    ("eval", "mlm_template_without_mask", ["--prompt=a", "--task_lm={R}",
                                           "--template={sentence_1} {prompt}"], "--template", None),
    ("eval", "dtype_enum", ["--prompt=a", "--dtype=float16"], "dtype", None),
]


def _setup(folder: str, kind: str | None) -> None:
  os.makedirs(folder, exist_ok=True)
  if kind == "file_w":
    open(os.path.join(folder, "w"), "w").close()
  elif kind == "file_f":
    open(os.path.join(folder, "f"), "w").close()
  elif kind == "empty_w":
    os.makedirs(os.path.join(folder, "w", "checkpoints"))
  elif kind == "run_w":       # a run with a (fake) checkpoint and another configuration
    os.makedirs(os.path.join(folder, "w", "checkpoints", "2"))
    with open(os.path.join(folder, "w", "config.json"), "w") as f:
      json.dump({"seed": 99, "run_id": "x"}, f)
  elif kind == "dir_out":
    os.makedirs(os.path.join(folder, "out"))


def _fill(arg: str, values: dict) -> str:
  for key, value in values.items():
    arg = arg.replace("{" + key + "}", value)
  return arg


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_gpt2_dir, tiny_roberta_dir, data_roots, broken_models):
  """{(launcher, case id): driver result}, each launcher's cases run in one process."""
  root = tmp_path_factory.mktemp("bad_inputs")
  values = {"T": tiny_gpt2_dir, "R": tiny_roberta_dir, "D": data_roots["good"]}
  values.update({f"data:{k}": v for k, v in data_roots.items()})
  values.update({f"model:{k}": v for k, v in broken_models.items()})
  return run_table(root, CASES, values, LAUNCHERS, BASE)


def run_table(root, cases_table, values: dict, launchers: dict, base: dict,
              setup=_setup) -> dict:
  """Runs a table of (launcher, case id, extra flags, expected, set-up) rows, each launcher's in
  one driver process; {(launcher, case id): driver result}. `setup(folder, kind)` prepares a
  case's folder; `{C}` is filled last (a value may hold it)."""
  out = {}
  for launcher, script in launchers.items():
    cases, keys = [], []
    for who, name, extra, _, kind in cases_table:
      if who != launcher:
        continue
      folder = str(root / launcher / name)
      setup(folder, kind)
      argv = [_fill(a, {**values, "C": folder}) for a in base[launcher] + extra]
      cases.append({"argv": argv, "dir": folder})
      keys.append((launcher, name))
    cases_path, results_path = root / f"{launcher}.json", root / f"{launcher}.out.json"
    cases_path.write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-m", "tests.launch.driver",
                           os.path.join(REPO, "experiments", script), str(cases_path),
                           str(results_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out.update(zip(keys, json.loads(results_path.read_text())))
  return out


@pytest.mark.parametrize("launcher,name,extra,expected,kind", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input_is_one_line_exit_2(table, broken_models, launcher, name, extra, expected,
                                      kind):
  del extra, kind
  result = table[(launcher, name)]
  lines = result["stderr"].splitlines()
  assert result["code"] == 2, result["stderr"][-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
  assert "Traceback" not in result["stderr"] and "weights_only=False" not in lines[0]
  if expected:
    assert expected in lines[0], lines[0]
  assert result["after"] == result["before"], "the failed run left files behind"
  assert not os.path.exists(broken_models["marker"]), "a pickle ran code"


def test_table_covers_every_launcher():
  counts = {k: sum(c[0] == k for c in CASES) for k in LAUNCHERS}
  assert sum(counts.values()) >= 60 and min(counts.values()) >= 20, counts
