"""Text from config.json / results.json in report.md: no cell, row or heading injected, shown as
written; a symbolic link planted at report.md is replaced, its target untouched."""
import json
import os
import re

import numpy as np
import pytest

from hpprompt.report import report

HOSTILE = "sst|2\n# Injected heading\n| a | b |"
METHOD = "pin | x\n## also injected `tick` ``two`` <b>bold</b> \\|"


def _cells(row: str) -> list[str]:
  """A markdown table row's cells, split at each `|` not escaped by an odd number of `\\`."""
  cells, current, backslashes = [], "", 0
  for ch in row.strip()[1:-1]:
    if ch == "|" and backslashes % 2 == 0:
      cells.append(current.strip())
      current = ""
    else:
      current += ch
    backslashes = backslashes + 1 if ch == "\\" else 0
  return cells + [current.strip()]


def _unescape(text: str) -> str:
  return re.sub(r"\\(.)", r"\1", text)


def _code_span(cell: str) -> str:
  """The content of a code span cell, by CommonMark's rules (equal fences, one space stripped
  from both sides if both have one); `\\|` is a table's escaped pipe."""
  fence = re.match(r"`+", cell).group(0)
  assert cell.endswith(fence) and not cell[len(fence)].startswith("`")
  inner = cell[len(fence):-len(fence)]
  assert fence not in inner
  if inner.startswith(" ") and inner.endswith(" ") and inner.strip():
    inner = inner[1:-1]
  return inner.replace("\\|", "|")


@pytest.fixture
def hostile_run(tmp_path):
  path = tmp_path / "run`x|y"
  os.makedirs(path)
  (path / "config.json").write_text(json.dumps(
      {"dataset": HOSTILE, "method": METHOD, "seed": "0|1", "task_lm": "lm|<script>",
       "steps": 2}))
  (path / "metrics.jsonl").write_text("".join(json.dumps(
      {"step": s, "raw_reward": 0.1 * s, "dev_acc": 0.5}) + "\n" for s in (1, 2)))
  prompt = "a`b``c | d\n# e"
  (path / "results.json").write_text(json.dumps(
      {"test_accuracy|x": 0.75, "best": {"prompt": prompt, "score": 0.5, "step": 2}}))
  return str(path), prompt


def test_hostile_text_stays_in_its_cell(hostile_run, tmp_path):
  path, prompt = hostile_run
  out = tmp_path / "out"
  report.write_report([path], str(out))
  markdown = (out / "report.md").read_text()
  headings = [line for line in markdown.splitlines() if line.startswith("#")]
  assert headings == ["# Run report", "## " + report.md_text(HOSTILE)]
  assert _unescape(headings[1][3:]) == " ".join(HOSTILE.split())
  rows = [line for line in markdown.splitlines() if line.startswith("|")]
  tables = [[_cells(r) for r in rows[:3]], [_cells(r) for r in rows[3:]]]
  for table in tables:
    assert len(table) == 3 and len({len(r) for r in table}) == 1, table    # header, align, 1 row
  summary = dict(zip(tables[0][0], tables[0][2]))
  assert _unescape(summary["method"]) == " ".join(METHOD.split())
  assert _unescape(summary["LMs"]) == "lm|<script>" and _unescape(summary["seeds"]) == "0|1"
  assert "<script>" not in markdown and "<b>" not in markdown
  assert _code_span(summary["best prompt"]) == json.dumps(prompt)
  assert _unescape(tables[0][0][3]) == "test_accuracy|x"
  per_run = dict(zip(tables[1][0], tables[1][2]))
  assert _code_span(per_run["run"]) == "run`x|y"


@pytest.mark.parametrize("text", ["plain", "`", "``a``", "a ` b", " lead", "x|y", "``", "a\nb"])
def test_code_span_round_trip(text):
  assert _code_span(report.md_code(text)) == text.replace("\n", " ")


def test_md_text_on_random_strings():
  rng = np.random.default_rng(0)
  alphabet = list("ab |`\\<>#\n\t*_[]")
  for _ in range(200):
    text = "".join(rng.choice(alphabet, size=rng.integers(0, 12)))
    cell = report.md_text(text)
    assert "\n" not in cell and len(_cells(f"| {cell} |")) == 1
    assert _unescape(cell) == " ".join(text.split())


def test_planted_report_link_is_replaced(hostile_run, tmp_path):
  outside = tmp_path / "outside.md"
  outside.write_text("not yours\n")
  os.makedirs(tmp_path / "out")
  os.symlink(outside, tmp_path / "out" / "report.md")
  report.write_report([hostile_run[0]], str(tmp_path / "out"))
  assert outside.read_text() == "not yours\n"
  assert not os.path.islink(tmp_path / "out" / "report.md")
