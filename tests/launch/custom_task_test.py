"""Your own reward (`experiments/custom_task.py`): the reward plumbing against brute force, bad
rewards and inputs (one line, exit 2, through tests/launch/driver.py), and a tiny run end to end
with resume, TensorBoard and `experiments/report.py`."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from hpprompt.agent import agent as agent_lib
from hpprompt.agent import trainer
from hpprompt.launch import custom_task
from hpprompt.tasks import custom
from hpprompt.tasks.data import DataError
from tests import launch_utils

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD_REWARD = "def score(prompts, inputs, outputs):\n  return [len(o) % 3 for o in outputs]\n"


# ---- the reward plumbing (fast) ------------------------------------------------------------------

class FakeGenerator:
  """Deterministic outputs that say where they came from: 'prompt|input|sample|key'."""

  def generate(self, prompts, inputs, num_samples, key):
    k = int(np.asarray(key).sum()) % 7
    return [[[f"{p}|{x}|{s}|{k}" for s in range(num_samples)] for x in inputs] for p in prompts]


def _hash_reward(prompts, inputs, outputs):
  # Depends on all three arguments, so a misaligned call changes the value.
  return [float(sum(map(ord, p + x + o)) % 11) for p, x, o in zip(prompts, inputs, outputs)]


def test_step_rewards_and_validation_match_brute_force():
  train = [f"in{i}" for i in range(5)]
  task = custom.CustomRewardTask(FakeGenerator(), _hash_reward, "r.py:h", train=train,
                                 dev=["d0", "d1", "d2"], test=[], num_samples=3, inputs_per_step=2)
  prompts = ["a", "bb", "a c"]
  for step in (0, 2, 7):
    got = task.step_rewards(prompts, step)
    inputs = [train[(step * 2 + i) % 5] for i in range(2)]       # consecutive, cycling
    texts = FakeGenerator().generate(prompts, inputs, 3, task_key(task.seed, step))
    want = [np.mean([_hash_reward([p], [x], [texts[i][j][s]])[0] for j, x in enumerate(inputs)
                     for s in range(3)]) for i, p in enumerate(prompts)]
    np.testing.assert_allclose(got.raw, want)
    assert got.groups is None and got.shaped is None
  dev = task.validate(["bb", "a", "bb"])
  texts = FakeGenerator().generate(["bb", "a"], task.dev, 3, task_key(task.seed + 1))
  want = {p: np.mean([_hash_reward([p], [x], [t])[0] for x, per_x in zip(task.dev, texts[i])
                      for t in per_x]) for i, p in enumerate(["bb", "a"])}
  np.testing.assert_allclose(dev, [want["bb"], want["a"], want["bb"]])
  assert task.memo_state()["validation"] == [["bb", want["bb"]], ["a", want["a"]]]


def task_key(seed, step=None):
  key = jax.random.PRNGKey(seed)
  return key if step is None else jax.random.fold_in(key, step)


def test_evaluate_is_the_mean_over_test_inputs():
  task = custom.CustomRewardTask(FakeGenerator(), _hash_reward, "r.py:h", train=["x"], dev=["x"],
                                 test=[f"t{i}" for i in range(5)], eval_samples=2)
  got = task.evaluate("p", batch=2)
  per_input = []
  for i in range(0, 5, 2):
    batch = task.test[i:i + 2]
    texts = FakeGenerator().generate(["p"], batch, 2, jax.random.fold_in(task_key(2), i))[0]
    per_input += [np.mean(_hash_reward(["p"] * 2, [x] * 2, t)) for x, t in zip(batch, texts)]
  assert got["test_reward"] == pytest.approx(np.mean(per_input))
  assert got["test_reward_se"] == pytest.approx(np.std(per_input, ddof=1) / np.sqrt(5))
  assert got["test_examples"] == 5 and len(task.last_outputs) == 5


@pytest.mark.parametrize("value,message", [
    (lambda p, x, o: 1 / 0, "r.py:f raised ZeroDivisionError: division by zero at step 3"),
    (lambda p, x, o: [1.0] * (len(o) - 1), "returned shape (3,) for 4 outputs"),
    (lambda p, x, o: 2.0, "returned shape () for 4 outputs"),
    (lambda p, x, o: [[1.0]] * len(o), "returned shape (4, 1) for 4 outputs"),
    (lambda p, x, o: [0.0, float("nan"), 0.0, 0.0], "returned nan for output 1"),
    (lambda p, x, o: [0.0, 0.0, float("inf"), 0.0], "returned inf for output 2"),
    (lambda p, x, o: ["a"] * len(o), "not one number per output"),
    (lambda p, x, o: None, "returned shape ()"),
])
def test_a_bad_reward_names_the_function_and_the_step(value, message):
  with pytest.raises(custom.RewardError) as e:
    custom.call_reward(value, "r.py:f", ["p"] * 4, ["x"] * 4, ["o1", "o2", "o3", "o4"],
                       "at step 3; nothing of step 3 was saved")
  assert message in str(e.value) and str(e.value).startswith("r.py:f ")
  assert "at step 3" in str(e.value)


def test_call_reward_passes_numbers_through():
  got = custom.call_reward(lambda p, x, o: np.arange(len(o)) * 0.5, "f", ["p"] * 3, ["x"] * 3,
                           ["a", "b", "c"], "")
  np.testing.assert_array_equal(got, [0.0, 0.5, 1.0])


def _write(path, text, mode="w"):
  with open(path, mode) as f:
    f.write(text)
  return str(path)


@pytest.mark.parametrize("spec,content,message", [
    ("{d}/r.py", GOOD_REWARD, "is not FILE.py:function"),
    ("{d}/r.py:", GOOD_REWARD, "is not FILE.py:function"),
    ("{d}/missing.py:score", None, "does not exist"),
    ("{d}:score", None, "(a directory)"),
    ("{d}/r.py:nope", GOOD_REWARD, "has no function 'nope'; its functions: ['score']"),
    ("{d}/r.py:X", "X = 3\n", "is a int, not a function"),
    ("{d}/r.py:score", "def score(p, x, o):\n  return [\n", "r.py:2: syntax error"),
    ("{d}/r.py:score", "import no_such_module_xyz\n", "ModuleNotFoundError"),
])
def test_load_reward_errors(tmp_path, spec, content, message):
  if content is not None:
    _write(tmp_path / "r.py", content)
  with pytest.raises(ValueError) as e:
    custom.load_reward(spec.format(d=tmp_path))
  assert message in str(e.value), str(e.value)


def test_load_reward_imports_modules_beside_it(tmp_path):
  _write(tmp_path / "helper_mod_xyz.py", "WORD = 'why'\n")
  _write(tmp_path / "r.py", "from helper_mod_xyz import WORD\n"
         "def score(p, x, o):\n  return [float(WORD in s) for s in o]\n")
  fn, name = custom.load_reward(f"{tmp_path}/r.py:score")
  assert name == f"{tmp_path}/r.py:score" and fn([], [], ["why not", "no"]) == [1.0, 0.0]
  assert str(tmp_path) not in sys.path


def test_read_inputs(tmp_path):
  assert custom.read_inputs(_write(tmp_path / "a.txt", "one\n\n  two \r\nthree")) == [
      "one", "two", "three"]
  for content, message in [("", "has no inputs"), (" \n\n", "has no inputs"),
                           (b"ok\nfine\nbad \xff here\n", "b.txt:3: not UTF-8 (byte 0xff)")]:
    path = _write(tmp_path / "b.txt", content, "wb" if isinstance(content, bytes) else "w")
    with pytest.raises(DataError) as e:
      custom.read_inputs(path)
    assert message in str(e.value), str(e.value)
  with pytest.raises(DataError, match="does not exist"):
    custom.read_inputs(str(tmp_path / "none.txt"))


# ---- the launcher on tiny models (slow) ----------------------------------------------------------

TINY = ["--task_lm={T}", "--policy_lm={T}", "--source_token=<s>", "--steps=3", "--eval_every=100",
        "--checkpoint_every=1", "--prompt_length=2", "--prompts_per_step=2", "--mlp_hidden=16",
        "--replay_batch=4", "--replay_capacity=16", "--filter_top_k=50", "--num_samples=2",
        "--dev_limit=1", "--inputs={F}/inputs.txt", "--workdir={C}/w"]
REWARD = "--reward={F}/rewards.py:"
FILES = {
    "inputs.txt": "the food was great\nthe staff was rude\nwe will be back\n",
    "empty.txt": "\n  \n",
    "long.txt": "short one\n" + "good " * 400 + "\n",
    "rewards.py": (GOOD_REWARD + "CALLS = []\n"
                   "def raises_at_2(p, x, o):\n  CALLS.append(1)\n"
                   "  if len(CALLS) == 2:\n    raise KeyError('label')\n  return [1.0] * len(o)\n"
                   "def short(p, x, o):\n  return [1.0] * (len(o) - 1)\n"
                   "def nan_at_3(p, x, o):\n  CALLS.append(1)\n"
                   "  return [float('nan') if len(CALLS) == 3 else 0.5] * len(o)\n"),
    "syntax.py": "def score(p, x, o)\n  return o\n",
}
# (case id, flags, text(s) of the error line, the step the reward fails at (None: nothing written))
CASES = [
    ("reward_missing", [], "--reward: give the reward function", None),
    ("reward_not_spec", ["--reward={F}/rewards.py"], "is not FILE.py:function", None),
    ("reward_no_file", ["--reward={F}/nope.py:score"], "nope.py' does not exist", None),
    ("reward_no_function", [REWARD + "scor"], "has no function 'scor'", None),
    ("reward_syntax", ["--reward={F}/syntax.py:score"], "syntax.py:1: syntax error", None),
    ("inputs_missing_flag", ["--inputs=", REWARD + "score"], "--inputs: give", None),
    ("inputs_no_file", ["--inputs={F}/no.txt", REWARD + "score"], "no.txt' does not exist", None),
    ("inputs_empty", ["--inputs={F}/empty.txt", REWARD + "score"], "empty.txt has no inputs",
     None),
    ("inputs_not_utf8", ["--inputs={F}/latin1.txt", REWARD + "score"],
     ("--inputs: /", "latin1.txt:2: not UTF-8"),
     None),
    ("dev_inputs_empty", ["--dev_inputs={F}/empty.txt", REWARD + "score"],
     "--dev_inputs: /", None),
    ("test_inputs_not_utf8", ["--test_inputs={F}/latin1.txt", REWARD + "score"],
     ("--test_inputs: /", "latin1.txt:2: not UTF-8"), None),
    ("dev_inputs_too_long", ["--dev_inputs={F}/long.txt", "--dev_limit=0", REWARD + "score"],
     ("--dev_inputs: ", "exceed the task LM's 512 positions"), None),
    ("num_samples_0", ["--num_samples=0", REWARD + "score"], "--num_samples", None),
    ("inputs_per_step_0", ["--inputs_per_step=0", REWARD + "score"], "--inputs_per_step", None),
    ("top_k_negative", ["--top_k=-1", REWARD + "score"], "--top_k", None),
    ("method", ["--method=ppo", REWARD + "score"], "--method", None),
    ("template", ["--template={sentence_1} {prompt}", REWARD + "score"], "--template", None),
    ("task_lm_missing", ["--task_lm=/nonexistent/lm", REWARD + "score"], "--task_lm", None),
    ("reward_raises", [REWARD + "raises_at_2"],
     "rewards.py:raises_at_2 raised KeyError: 'label' at step 2; nothing of step 2 was saved", 2),
    ("reward_wrong_shape", [REWARD + "short"], "rewards.py:short returned shape (7,) for 8 "
     "outputs; it must return one number per output at step 1", 1),
    ("reward_nan", [REWARD + "nan_at_3"], "rewards.py:nan_at_3 returned nan for output 0", 3),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  folder = tmp_path_factory.mktemp("custom_files")
  for name, text in FILES.items():
    _write(folder / name, text)
  _write(folder / "latin1.txt", b"fine\ncaf\xe9 au lait\n", "wb")
  return str(folder)


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_gpt2_dir, files):
  """{case id: driver result}, all cases in one process."""
  root = tmp_path_factory.mktemp("custom_cases")
  cases = []
  for name, extra, _, _ in CASES:
    folder = str(root / name)
    os.makedirs(folder)
    fill = lambda a: a.replace("{T}", tiny_gpt2_dir).replace("{F}", files).replace("{C}", folder)
    cases.append({"argv": [fill(a) for a in TINY + extra], "dir": folder})
  (root / "cases.json").write_text(json.dumps(cases))
  proc = subprocess.run([sys.executable, "-m", "tests.launch.driver",
                         os.path.join(REPO, "experiments", "custom_task.py"),
                         str(root / "cases.json"), str(root / "out.json")], cwd=REPO,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return {c[0]: (r, case["dir"]) for c, r, case in
          zip(CASES, json.loads((root / "out.json").read_text()), cases)}


@pytest.mark.slow
@pytest.mark.parametrize("name,extra,expected,failed_step", CASES, ids=[c[0] for c in CASES])
def test_bad_reward_or_inputs_is_one_line_exit_2(table, name, extra, expected, failed_step):
  del extra
  result, folder = table[name]
  lines = result["stderr"].splitlines()
  assert result["code"] == 2, result["stderr"][-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
  for text in (expected,) if isinstance(expected, str) else expected:
    assert text in lines[0], lines[0]
  if failed_step is None:
    assert result["after"] == result["before"], "the failed run left files behind"
    return
  assert lines[0].startswith("error: --reward: ")
  workdir = os.path.join(folder, "w")
  steps = [r["step"] for r in launch_utils.read_metrics(workdir)] if os.path.exists(
      os.path.join(workdir, "metrics.jsonl")) else []
  assert steps == list(range(1, failed_step)), steps
  folder = os.path.join(workdir, "checkpoints")
  saved = sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []
  assert saved == list(range(1, failed_step))[-3:], saved
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def _cfg(model_dir, files, workdir, **kw):
  agent = dict(prompt_length=2, prompts_per_step=2, mlp_hidden=16, replay_batch=4,
               replay_capacity=16, filter_top_k=50)
  return custom_task.CustomTaskConfig(
      reward=f"{files}/rewards.py:score", inputs=f"{files}/inputs.txt",
      test_inputs=f"{files}/inputs.txt", task_lm=model_dir, policy_lm=model_dir,
      source_token="<s>", steps=4, eval_every=2, checkpoint_every=2, num_samples=2, dev_limit=1,
      eval_samples=2, workdir=str(workdir), agent=agent, **kw)


@pytest.mark.slow
def test_end_to_end_resume_tensorboard_and_report(tiny_gpt2_dir, files, tmp_path, monkeypatch):
  full = custom_task.run(_cfg(tiny_gpt2_dir, files, tmp_path / "full", tensorboard=True))
  written = set(os.listdir(tmp_path / "full"))
  assert {"config.json", "metrics.jsonl", "prompts.csv", "results.json", "checkpoints",
          "test_outputs.txt"} <= written
  assert any(n.startswith("events.out.tfevents") for n in written)
  assert full["test_examples"] == 3 and np.isfinite(full["test_reward"])
  outputs = (tmp_path / "full" / "test_outputs.txt").read_text().splitlines()
  assert len(outputs) == 3 and all(len(line.split(" | ")) == 2 for line in outputs)
  drop = ("time_sample", "time_reward", "time_learn")
  rows = launch_utils.read_metrics(tmp_path / "full", drop=drop)
  assert [r["step"] for r in rows] == [1, 2, 3, 4] and "dev_reward" in rows[1]
  config = json.loads((tmp_path / "full" / "config.json").read_text())
  assert config["task"] == "custom (rewards.py:score)"
  assert config["reward"].endswith("rewards.py:score")
  # Cut at step 3 (abrupt), resumed: the same records, prompts and test outputs.
  restore = launch_utils.interrupt_on_call(monkeypatch, agent_lib.PromptAgent, "learn", 3,
                                           "keyboard_interrupt")
  with pytest.raises(trainer.Interrupted):
    custom_task.run(_cfg(tiny_gpt2_dir, files, tmp_path / "cut"))
  restore()
  resumed = custom_task.run(_cfg(tiny_gpt2_dir, files, tmp_path / "cut", resume=True))
  assert launch_utils.read_metrics(tmp_path / "cut", drop) == rows
  assert resumed["best"] == full["best"] and resumed["test_reward"] == full["test_reward"]
  assert (tmp_path / "cut" / "test_outputs.txt").read_text().splitlines() == outputs
  # experiments/report.py reads custom runs like any other.
  proc = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "report.py"),
                         f"--runs={tmp_path}/full,{tmp_path}/cut", f"--out={tmp_path}/report"],
                        capture_output=True, text=True, timeout=300,
                        env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 0, proc.stderr[-2000:]
  report = (tmp_path / "report" / "report.md").read_text()
  assert "custom (rewards.py:score)" in report and "test_reward" in report
  assert "dev_reward" in report and "| pin | 0 |" in report
  assert any(n.startswith("custom") and n.endswith("_reward.png")
             for n in os.listdir(tmp_path / "report"))
