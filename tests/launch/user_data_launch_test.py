"""Your own data in every classification launcher (one tiny run each on a user CSV with --shots),
and every bundled data set usable by the manual method (>= 2 prompts; agnews runs)."""
import csv
import json
import os
import shutil

import pytest

from hpprompt.launch import evaluate
from hpprompt.launch import fewshot
from hpprompt.launch import manual
from hpprompt.orchestration import grid
from hpprompt.tasks import data
from hpprompt.tasks import user_data

FEW_SHOT = [k for k in data.DATASETS if "/" not in k and "_" not in k]
AGENT = {"prompt_length": 2, "prompts_per_step": 4, "mlp_hidden": 16, "replay_batch": 4,
         "replay_capacity": 16, "filter_top_k": 50}
SHOTS, POOL = 4, 40        # 40 rows: 8 train + 8 dev drawn, 24 test


def test_every_bundled_set_has_two_sourced_manual_prompts():
  assert sorted(manual.datasets_with_prompts()) == sorted(FEW_SHOT)
  for name in FEW_SHOT:
    rows = manual.bundled_prompts(name)
    assert len(rows) >= 2 and len({r["prompt"] for r in rows}) == len(rows), name
    assert all(r["prompt"].strip() and len(r["source"]) > 20 for r in rows), name


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
  """SST-2 sentences with class names as labels (single tokens of the tiny tokenizer)."""
  examples = [e for s in ("train", "dev") for e in data.load_few_shot("sst-2", 0, s)][:POOL]
  path = str(tmp_path_factory.mktemp("user") / "reviews.csv")
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    writer.writerows([e.text, ("terrible", "great")[e.label]] for e in examples)
  return path


def _drawn(path):
  """(class names, splits) of the --shots draw that the launchers below make."""
  spec, splits = user_data.load(path, user_data.DataFields(shots=SHOTS), seed=1)
  return spec.classes, splits


@pytest.mark.slow
def test_agent_launcher(user_csv, tiny_gpt2_dir, tmp_path):
  results = fewshot.run(fewshot.FewShotConfig(
      dataset=user_csv, shots=SHOTS, dataset_seed=1, task_lm=tiny_gpt2_dir,
      policy_lm=tiny_gpt2_dir, source_token="<s>", steps=2, num_devices=1, agent=AGENT,
      workdir=str(tmp_path / "w")))
  test = _drawn(user_csv)[1]["test"]
  assert len(test) == POOL - 4 * SHOTS
  assert results["test_accuracy"] * len(test) == pytest.approx(round(results["test_accuracy"]
                                                                     * len(test)))
  with open(tmp_path / "w" / "config.json") as f:
    config = json.load(f)
  assert config["shots"] == SHOTS and config["dataset"] == user_csv


@pytest.mark.slow
def test_evaluate_equals_the_same_splits_as_files(user_csv, tiny_gpt2_dir, tmp_path):
  """The --shots draw of one file scores like a folder holding the drawn splits."""
  folder = tmp_path / "drawn"
  folder.mkdir()
  names, splits = _drawn(user_csv)
  assert names == ("great", "terrible")               # sorted class names
  for split, examples in splits.items():
    with open(folder / f"{split}.tsv", "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f, delimiter="\t")
      writer.writerow(["text", "label"])
      writer.writerows([e.text, names[e.label]] for e in examples)
  kw = dict(prompts=(" It was", " All in all"), task_lm=tiny_gpt2_dir, split="test")
  drawn = evaluate.run(evaluate.EvalConfig(dataset=user_csv, shots=SHOTS, dataset_seed=1, **kw))
  files = evaluate.run(evaluate.EvalConfig(dataset=str(folder), **kw))
  assert [r["examples"] for r in drawn] == [POOL - 4 * SHOTS] * 2
  assert [r["accuracy"] for r in drawn] == pytest.approx([r["accuracy"] for r in files])


@pytest.mark.slow
def test_results_grid_and_soft_prompt_launcher(user_csv, tiny_gpt2_dir, tmp_path):
  """The grid's soft-prompt cell: soft_prompt.run on the user CSV, named after the file."""
  cfg = grid.GridConfig(
      datasets=(user_csv,), seeds=(0,), methods=("soft",), out=str(tmp_path / "g"),
      task_lm=tiny_gpt2_dir, steps=2, shots=SHOTS, report=False,
      baseline_fields={"prompt_length": 2, "num_devices": 1})
  assert grid.run(cfg, print_fn=lambda line: None) == {"reviews/soft_seed0": "done"}
  with open(tmp_path / "g" / "reviews" / "soft_seed0" / "results.json") as f:
    assert json.load(f)["test_examples"] == POOL - 4 * SHOTS


@pytest.fixture(scope="module")
def agnews_lm(tmp_path_factory):
  from tests import tiny  # noqa: PLC0415
  words = data.get_spec("agnews").verbalizers
  return tiny.make_gpt2(str(tmp_path_factory.mktemp("agnews_lm")),
                        tokenizer={"words": words, "vocab_size": 600})


@pytest.mark.slow
def test_manual_method_on_agnews(agnews_lm, tmp_path):
  """The grid's manual cell on agnews (no bundled test split: a data root with the dev rows as
  its test file)."""
  root = tmp_path / "data" / "agnews"
  src = os.path.join(data.bundled_root(), "agnews", data.SEED_FOLDERS[0])
  shutil.copytree(src, root / data.SEED_FOLDERS[0])
  shutil.copy(os.path.join(src, "dev.tsv"), root / "test.tsv")
  outcome = grid.run(grid.GridConfig(
      datasets=("agnews",), seeds=(0,), methods=("manual",), out=str(tmp_path / "g"),
      data_dir=str(tmp_path / "data"), task_lm=agnews_lm, fewshot_fields={"num_devices": 1}),
      print_fn=lambda line: None)
  assert outcome == {"agnews/manual_seed0": "done"}
  with open(tmp_path / "g" / "agnews" / "manual_seed0" / "results.json") as f:
    cell = json.load(f)
  prompts = [r["prompt"] for r in manual.bundled_prompts("agnews")]
  assert sorted(r["prompt"] for r in cell["top_prompts"]) == sorted(prompts)
  assert cell["best"]["prompt"] in prompts
  assert cell["test_accuracy"] == pytest.approx(cell["best"]["score"])     # test = dev here
