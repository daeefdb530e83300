"""Result files written by the launchers replace a planted symbolic link; its target is untouched."""
import json
import os

import numpy as np

from hpprompt.launch import contact_sheet
from hpprompt.launch import validate


def _plant(tmp_path, name):
  outside = tmp_path / "outside.txt"
  outside.write_text("keep me")
  (tmp_path / "run").mkdir(exist_ok=True)
  link = tmp_path / "run" / name
  os.symlink(outside, link)
  return outside, link


def test_output_json_replaces_a_planted_link(tmp_path):
  outside, link = _plant(tmp_path, "results.json")
  validate.write_json(str(link), {"accuracy": 0.5}, "output_json")
  assert outside.read_text() == "keep me"
  assert not os.path.islink(link)
  assert json.loads(link.read_text()) == {"accuracy": 0.5}


def test_contact_sheet_replaces_a_planted_link(tmp_path):
  outside, link = _plant(tmp_path, "contact_sheet.png")
  image = np.zeros((8, 8, 3), np.uint8)
  contact_sheet.write(str(link), [("a.png", image, [{"prompt": "a cat", "clip_score": 0.3}])])
  assert outside.read_text() == "keep me"
  assert not os.path.islink(link)
  assert link.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
