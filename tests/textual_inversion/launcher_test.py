"""The textual-inversion launcher end to end: PIN, RLPrompt and PEZ on the tiny trained CLIP, the
summary files, resume across targets, and bad input as one line with exit code 2."""
import csv
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from hpprompt.gradient import pez
from hpprompt.launch import cli
from hpprompt.launch import textual_inversion as launch
from hpprompt.metrics import perplexity
from hpprompt.models import clip_loader
from hpprompt.models import hub
from hpprompt.tasks import textual_inversion as ti
from tests import launch_utils

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TIME_KEYS = ("time_sample", "time_reward", "time_learn", "time_step")


@pytest.fixture(scope="module")
def two_images(trained_clip):
  files = sorted(trained_clip[2])[:2]
  return ",".join(files)


def _cfg(trained_clip, lm_dir, workdir, method="pin", **kw):
  agent = dict(prompt_length=3, prompts_per_step=4, mlp_hidden=32, replay_batch=4,
               replay_capacity=64, filter_top_k=50, learning_rate=1e-3)
  return launch.TextualInversionConfig(
      method=method, clip=trained_clip[0], policy_lm=lm_dir, source_token="<s>", agent=agent,
      pez={"prompt_length": 2}, workdir=str(workdir),
      **{"image": trained_clip[1], "steps": 4, "eval_every": 2, "checkpoint_every": 2, **kw})


def _check_outputs(results, trained_clip, lm_dir, workdir, images, method):
  """Summary files and per-target runs; every CLIP score and perplexity in prompts.csv recomputed
  independently of the run."""
  names = images.split(",")
  assert [t["target"] for t in results["targets"]] == names
  assert {"prompts.csv", "results.json", "contact_sheet.png"} <= set(os.listdir(workdir))
  for t in results["targets"]:
    assert {"config.json", "metrics.jsonl", "prompts.csv", "results.json", "checkpoints"} <= set(
        os.listdir(t["workdir"]))
  with open(workdir / "prompts.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["target", "rank", "prompt", "clip_score", "perplexity", "step"]
  model, tokenizer, preprocess = clip_loader.load_clip(trained_clip[0])
  scorer = ti.CLIPScorer(model, tokenizer, preprocess=preprocess)
  embeds = scorer.image_embeds([im for _, im in ti.load_images(images)])
  lm, lm_tok = hub.load_pretrained(lm_dir)
  want = scorer.scores([r["prompt"] for r in rows], embeds)
  ppl = perplexity.prompt_perplexity(lm, lm_tok, [r["prompt"] for r in rows],
                                     bos_token=hub.document_start(lm_dir, lm_tok))
  for i, row in enumerate(rows):
    assert float(row["clip_score"]) == pytest.approx(want[i, names.index(row["target"])], abs=1e-4)
    assert float(row["perplexity"]) == pytest.approx(ppl[i], rel=1e-4)
  mean = np.mean([t["best"]["clip_score"] for t in results["targets"]])
  assert results["mean_best_clip_score"] == pytest.approx(mean)
  config = json.loads(open(os.path.join(results["targets"][0]["workdir"], "config.json")).read())
  if method == "pez":
    assert config["pez_config"]["prompt_length"] == 2
    assert config["pez_config"]["learning_rate"] == 0.1
    assert config["pez_config"]["population"] == 49408
  else:
    agent = config["agent_config"]
    assert agent["prompt_length"] == 3 and agent["prompts_per_step"] == 4
    assert agent["reward_new_range"] == ([0.0, 80.0] if method == "rlprompt" else [0.0, 1.0])


def test_rlprompt_end_to_end(trained_clip, tiny_gpt2_dir, tmp_path):
  image = sorted(trained_clip[2])[0]
  results = launch.run(_cfg(trained_clip, tiny_gpt2_dir, tmp_path / "run", "rlprompt",
                            image=image, steps=2))
  _check_outputs(results, trained_clip, tiny_gpt2_dir, tmp_path / "run", image, "rlprompt")


def test_presets_follow_the_paper():
  cfg = launch.TextualInversionConfig(agent={})
  pin = launch.agent_config(cfg)
  assert (pin.prompt_length, pin.prompts_per_step, pin.filter_top_k) == (8, 32, 10_000)
  assert pin.reward_new_range == (0.0, 1.0) and pin.replay and pin.regularizer == "tsallis"
  rl = launch.agent_config(dataclasses.replace(cfg, method="rlprompt"))
  assert rl.reward_new_range == (0.0, 80.0) and rl.sampling_top_k == 256
  cpu = launch.agent_config(launch.TextualInversionConfig())
  assert cpu.prompts_per_step == 16 and cpu.prompt_length == 8


@pytest.mark.parametrize("method", ["pin", "pez"])
def test_interrupt_and_resume_equals_uninterrupted(trained_clip, tiny_gpt2_dir, tmp_path,
                                                   monkeypatch, two_images, method):
  """End to end on two targets (outputs checked); then Ctrl-C during the second target, and
  --resume skips the finished first target and continues the second from its checkpoint: every
  file equals the uninterrupted run's."""
  full = launch.run(_cfg(trained_clip, tiny_gpt2_dir, tmp_path / "full", method,
                         image=two_images, steps=3))
  _check_outputs(full, trained_clip, tiny_gpt2_dir, tmp_path / "full", two_images, method)
  cfg = _cfg(trained_clip, tiny_gpt2_dir, tmp_path / "cut", method, image=two_images, steps=3)
  if method == "pez":
    cls, name = pez.PEZ, "train_step"
  else:
    cls, name = ti.TextualInversionTask, "step_rewards"
  undo = launch_utils.interrupt_on_call(monkeypatch, cls, name, at=5, how="sigint")
  with pytest.raises(launch.trainer.Interrupted):
    launch.run(cfg)
  undo()
  resumed = launch.run(dataclasses.replace(cfg, resume=True))
  assert resumed["targets"][0]["best"] == full["targets"][0]["best"]
  assert resumed["targets"][1]["best"] == full["targets"][1]["best"]
  for a, b in zip(full["targets"], resumed["targets"]):
    assert (launch_utils.read_metrics(a["workdir"], drop=_TIME_KEYS)
            == launch_utils.read_metrics(b["workdir"], drop=_TIME_KEYS))
  assert ((tmp_path / "full" / "prompts.csv").read_text()
          == (tmp_path / "cut" / "prompts.csv").read_text())


def _main_error(capsys, cfg) -> str:
  with pytest.raises(SystemExit) as info:
    cli.run_main(launch.run, cfg)
  assert info.value.code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1, err
  return err


def test_bad_input_is_one_line(trained_clip, tiny_gpt2_dir, tmp_path, capsys):
  (tmp_path / "broken.jpg").write_bytes(b"\x89PNG garbage")
  (tmp_path / "notes.txt").write_text("hello")
  (tmp_path / "empty").mkdir()
  base = _cfg(trained_clip, tiny_gpt2_dir, tmp_path / "run")
  cases = [({"image": str(tmp_path / "broken.jpg")}, "error: --image: .*broken.jpg: not a "),
           ({"image": str(tmp_path / "notes.txt")}, "error: --image: .*notes.txt: not a readable"),
           ({"image": str(tmp_path / "empty")}, "error: --image: .*empty: no image files"),
           ({"image": "http://127.0.0.1:9/x.png"}, "error: --image: http://127.0.0.1:9/x.png: "),
           ({"clip": str(tmp_path)}, "error: --clip: .*neither an OpenCLIP directory"),
           ({"clip": "hpprompt-tests/no-such-clip"}, "error: --clip: could not download"),
           ({"method": "nope"}, "error: --method: unknown method"),
           ({"steps": 0}, "error: --steps: must be >= 1")]
  for change, pattern in cases:
    err = _main_error(capsys, dataclasses.replace(base, **change))
    assert re.match(pattern, err), err


def test_command_line_bad_flag(trained_clip, tiny_gpt2_dir):
  """The absl launcher: a flag PEZ does not use is one line naming it, exit code 2 (the runs
  themselves go through `launch.run` above)."""
  script = os.path.join(REPO, "experiments", "textual_inversion.py")
  bad = subprocess.run([sys.executable, script, "--method=pez", "--paper", "--replay_batch=3",
                        f"--clip={trained_clip[0]}", f"--policy_lm={tiny_gpt2_dir}"],
                       env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True,
                       timeout=300)
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --replay_batch:"), bad.stderr
  assert len(bad.stderr.strip().splitlines()) == 1
