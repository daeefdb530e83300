"""TensorBoard event files of a run: every logged number and string, read back from the file."""
import glob
import json
import os
import struct

import pytest

from hpprompt.training.run import Run

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def read_events(workdir) -> list:
  """Every Event in the run's event files (TFRecord framing: length, crc, data, crc)."""
  events = []
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      buf = f.read()
    pos = 0
    while pos < len(buf):
      (length,) = struct.unpack("<Q", buf[pos:pos + 8])
      event = event_pb2.Event()
      event.ParseFromString(buf[pos + 12:pos + 12 + length])
      events.append(event)
      pos += 12 + length + 4
  return events


def logged(workdir) -> dict:
  """{(tag, step): scalar or text} of the event files."""
  out = {}
  for event in read_events(workdir):
    for value in event.summary.value:
      tag = value.tag.removesuffix("/text_summary")
      if value.HasField("tensor"):
        out[(tag, event.step)] = value.tensor.string_val[0].decode()
      else:
        out[(tag, event.step)] = value.simple_value
  return out


def _run(workdir, **kw):
  return Run(str(workdir), {"seed": 0, **kw.pop("config", {})}, total_steps=3, resume=False,
             checkpoint_every=10, **kw)


def test_event_files_hold_the_metrics_records(tmp_path):
  run = _run(tmp_path, tensorboard=True)
  records = [{"raw_reward": 1.5, "loss": 0.25, "train_acc": 0.5},
             {"raw_reward": 2.5, "train_acc": 0.75, "dev_acc": 0.625, "greedy_prompt": " It was"},
             {"raw_reward": -1.0, "loss": float("nan"), "sampled_best": "great |"}]
  for step, record in enumerate(records, 1):
    run.log(step, record)
  run.finish({})
  want = {}
  with open(tmp_path / "metrics.jsonl") as f:
    for line in f:
      row = json.loads(line)
      for key, value in row.items():
        # metrics.jsonl is strict JSON: a NaN is written as null, and TensorBoard skips it
        if key != "step" and value is not None and not (isinstance(value, float)
                                                        and value != value):
          want[(key, row["step"])] = value
  got = logged(tmp_path)
  assert got.keys() == want.keys()
  for key, value in want.items():
    assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key


def test_no_event_files_without_the_flag(tmp_path):
  run = _run(tmp_path)
  run.log(1, {"raw_reward": 1.0})
  run.finish({})
  assert not glob.glob(str(tmp_path / "events.*"))
