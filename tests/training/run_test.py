"""Run bookkeeping: the best-prompt table and its CSV."""
import csv

from hpprompt.training.run import BestPrompts


def _rows(path):
  with open(path, newline="") as f:
    return list(csv.reader(f))


def test_best_prompts_keeps_the_top_by_score_then_step():
  best = BestPrompts(keep=2)
  assert best.add("a", 0.5, 1) and not best.add("b", 0.5, 2)       # a tie is not a new best
  assert best.add("c", 0.75, 3)
  assert not best.add("a", 0.25, 4)                                 # a worse repeat changes nothing
  assert [(r["prompt"], r["score"]) for r in best.records] == [("c", 0.75), ("a", 0.5)]
  assert best.best["prompt"] == "c"


def test_csv_has_a_perplexity_column_only_when_every_record_has_one(tmp_path):
  best = BestPrompts()
  best.add(" It was", 0.75, 10)
  best.add("great ,", 0.5, 20)
  best.write_csv(tmp_path / "a.csv")
  assert _rows(tmp_path / "a.csv") == [["rank", "prompt", "score", "step"],
                                       ["1", " It was", "0.750000", "10"],
                                       ["2", "great ,", "0.500000", "20"]]
  best.records[0]["perplexity"] = 334.256
  best.write_csv(tmp_path / "b.csv")
  assert _rows(tmp_path / "b.csv")[0] == ["rank", "prompt", "score", "step"]   # one lacks it
  best.records[1]["perplexity"] = 1e5
  best.write_csv(tmp_path / "c.csv")
  assert _rows(tmp_path / "c.csv") == [["rank", "prompt", "score", "step", "perplexity"],
                                       ["1", " It was", "0.750000", "10", "334.26"],
                                       ["2", "great ,", "0.500000", "20", "100000.00"]]
