"""Bad user data and user-data flags (--dataset=PATH / tfds:, --shots, --classes, --text_key,
--label_key) in every classification launcher: exit code 2, one line `error: ...` naming the flag
or `file:row`, no traceback, nothing written. The machinery of bad_inputs_test.py (its base
arguments, case folders and `{...}` filling) and tests/launch/driver.py (one process per launcher);
`{ds}` is the launcher's data set flag, `{u:x}` the user files built below."""
import csv
import json
import os

import pytest

from tests.launch.bad_inputs_test import BASE
from tests.launch.bad_inputs_test import LAUNCHERS
from tests.launch.bad_inputs_test import run_table

pytestmark = pytest.mark.slow
SCRIPTS = {**LAUNCHERS, "grid": "results_grid.py"}
ARGS = {**BASE, "eval": BASE["eval"] + ["--prompt=a"],
        "grid": ["--task_lm={T}", "--policy_lm={T}", "--methods=soft", "--seeds=0", "--steps=1",
                 "--out={C}/out"]}
DATASET_FLAG = {"few": "--dataset", "soft": "--dataset", "eval": "--dataset", "grid": "--datasets"}
GOOD = ["{ds}={u:good}", "--shots=2"]

# (launchers, case id, extra flags, text the error line must contain)
FLAG_ROWS = [
    ("dataset_missing_file", ["{ds}={C}/nowhere.csv"], "nowhere.csv: no such file"),
    ("dataset_unknown_tfds", ["{ds}=tfds:no_such_set_x"], "no_such_set_x: no such tensorflow-"),
    ("shots_0", ["{ds}={u:good}", "--shots=0"], "--shots: must be >= 1"),
    ("shots_too_many", ["{ds}={u:good}", "--shots=50"], "fewer than --shots=50"),
    ("shots_not_integer", ["{ds}={u:good}", "--shots=two"], "--shots"),
    ("shots_bundled_set", ["{ds}=sst-2", "--shots=2"], "--shots: only for your own data"),
    ("classes_one", GOOD + ["--classes=great"], "--classes: give two or more"),
    ("classes_wrong_names", GOOD + ["--classes=bad,good"], "reviews.csv:2: label"),
    ("text_key_missing", GOOD + ["--text_key=review"], "reviews.csv:1: no column 'review'"),
    ("text_key_three", GOOD + ["--text_key=a,b,c"], "--text_key: give one column"),
    ("label_key_missing", GOOD + ["--label_key=y"], "reviews.csv:1: no column 'y'"),
]
FILE_ROWS = [
    ("missing_column", ["{ds}={u:missing_column}", "--shots=1"], "lab.csv:1: no column 'label'"),
    ("missing_label", ["{ds}={u:missing_label}", "--shots=1"], "nolabel.csv:4: missing label"),
    ("unknown_label", ["{ds}={u:unknown_label}"], "dev.csv:3: label 'meh'"),
    ("empty_split", ["{ds}={u:empty_split}"], "dev.csv: no examples"),
    ("not_utf8", ["{ds}={u:not_utf8}", "--shots=1"], "bytes.csv:5: not UTF-8"),
    ("wrong_fields", ["{ds}={u:wrong_fields}", "--shots=1"], "fields.tsv:3: expected 2 fields"),
    ("bad_json", ["{ds}={u:bad_json}", "--shots=1"], "rows.jsonl:2: not a JSON object"),
    ("no_dev", ["{ds}={u:no_dev}"], "no dev split"),
    ("dataset_seed_negative", GOOD + ["--dataset_seed=-1"], "--dataset_seed: must be >= 0"),
    ("integer_labels", ["{ds}={u:int_labels}", "--shots=2"], "--verbalizers"),
    ("multi_token_class", ["{ds}={u:multi_token}", "--shots=2"], "class 'negative'"),
]
CASES = ([(k, *row) for row in FLAG_ROWS for k in SCRIPTS]
         + [("few", *row) for row in FILE_ROWS]
         + [("soft", "k_per_class", GOOD + ["--k_per_class=2"], "--k_per_class"),
            ("eval", "no_test_split", ["{ds}={u:no_test}", "--split=test"], "--split")])


def _csv(path, rows, header=("text", "label"), delimiter=","):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
  return path


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("user_files")
  rows = [[f"review number {i}", ("terrible", "great")[i % 2]] for i in range(40)]
  out = {"good": _csv(str(root / "reviews.csv"), rows),
         "missing_column": _csv(str(root / "lab.csv"), rows, ("text", "lab")),
         "missing_label": _csv(str(root / "nolabel.csv"), rows[:2] + [["x", ""]] + rows[2:]),
         "wrong_fields": _csv(str(root / "fields.tsv"), [rows[0], rows[1] + ["x"]], delimiter="\t"),
         "int_labels": _csv(str(root / "ints.csv"), [[t, str(i % 2)] for i, (t, _) in
                                                     enumerate(rows)]),
         "multi_token": _csv(str(root / "multi.csv"), [[t, {"great": "positive"}.get(y, "negative")]
                                                       for t, y in rows])}
  for name, dev in (("unknown_label", rows[:1] + [["x", "meh"]]), ("empty_split", []),
                    ("no_test", rows[:4]), ("no_dev", None)):
    _csv(str(root / name / "train.csv"), rows)
    if dev is not None:
      _csv(str(root / name / "dev.csv"), dev)
    out[name] = str(root / name)
  bad = "\n".join(["text,label"] + [f"{t},{y}" for t, y in rows]).encode()
  lines = bad.split(b"\n")
  lines[4] = lines[4].replace(b" ", b" \xfe", 1)
  out["not_utf8"] = str(root / "bytes.csv")
  with open(out["not_utf8"], "wb") as f:
    f.write(b"\n".join(lines) + b"\n")
  out["bad_json"] = str(root / "rows.jsonl")
  with open(out["bad_json"], "w") as f:
    f.write(json.dumps({"text": "a", "label": "great"}) + "\n{not json\n")
  return out


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_gpt2_dir, data_roots, user_files):
  """{(launcher, case id): driver result}, each launcher's cases in one process."""
  root = tmp_path_factory.mktemp("bad_user_data")
  values = {"T": tiny_gpt2_dir, "D": data_roots["good"],
            **{f"u:{k}": v for k, v in user_files.items()}}
  rows = [(who, name, extra, expected, None) for who, name, extra, expected in CASES]
  out = {}
  for launcher, script in SCRIPTS.items():    # {ds} first: it holds {C}, which is filled last
    out.update(run_table(root, rows, {"ds": DATASET_FLAG[launcher], **values}, {launcher: script},
                         ARGS))
  return out


@pytest.mark.parametrize("launcher,name,extra,expected", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_user_data_is_one_line_exit_2(table, launcher, name, extra, expected):
  del extra
  result = table[(launcher, name)]
  lines = result["stderr"].splitlines()
  assert result["code"] == 2, result["stderr"][-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
  assert "Traceback" not in result["stderr"] and expected in lines[0], lines[0]
  assert result["after"] == result["before"], "the failed run left files behind"


def test_every_new_flag_has_a_row_in_every_launcher():
  for flag in ("--shots", "--classes", "--text_key", "--label_key", "tfds:", "{ds}={C}"):
    for launcher in SCRIPTS:
      assert any(who == launcher and any(flag in a for a in extra)
                 for who, _, extra, _ in CASES), (flag, launcher)
