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


class _Clock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def test_train_seconds_add_up_over_resumes_and_drop_the_lost_steps(tmp_path, monkeypatch):
  import jax.numpy as jnp

  from hpprompt.training import run as run_lib
  clock = _Clock()
  monkeypatch.setattr(run_lib.time, "time", clock)
  trees = {"train": {"w": jnp.zeros(3)}}

  def open_run(resume):
    return run_lib.Run(str(tmp_path), {"lr": 1.0}, total_steps=4, resume=resume,
                       checkpoint_every=1, stream=open(tmp_path / "log.txt", "a"))

  first = open_run(False)
  clock.now += 50.0                      # loading the models is not training
  assert first.restore(trees) is None and first.train_seconds() == 0.0
  clock.now += 10.0
  first.save(1, trees)                   # 10 s of training are checkpointed
  clock.now += 7.0                       # step 2 is lost with the crash below
  assert first.train_seconds() == 17.0
  first.checkpointer.close()

  second = open_run(True)
  clock.now += 30.0                      # loading again
  assert second.restore(trees) is not None and second.start_step == 1
  assert second.train_seconds() == 10.0
  clock.now += 4.0
  second.save(2, trees)
  second.checkpointer.close()
  third = open_run(True)
  third.restore(trees)
  clock.now += 1.5
  assert third.start_step == 2 and third.train_seconds() == 15.5
  third.checkpointer.close()
