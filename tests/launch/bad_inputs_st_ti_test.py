"""Bad inputs to the style-transfer and textual-inversion launchers (and the flags every agent
launcher shares): exit code 2, one line `error: ...` naming the flag or file(:line), no traceback,
nothing written. The table machinery is tests/launch/bad_inputs_test.py's (one driver process per
launcher, tests/launch/driver.py); `{T}` is the tiny GPT-2, `{I}` a tiny image, `{C}` the case's own
folder, `{D}` good few-shot data."""
import errno
import json
import os
import struct
import zlib

import pytest

from tests.launch.bad_inputs_test import BASE as FEW_BASE
from tests.launch.bad_inputs_test import REPO
from tests.launch.bad_inputs_test import run_table

pytestmark = pytest.mark.slow
LAUNCHERS = {"st": "style_transfer.py", "est": "evaluate_style_transfer.py",
             "ti": "textual_inversion.py", "few": "fewshot_classification.py",
             "report": "report.py", "snr": "style_reward_snr.py"}
_TINY_ST = ["--task_lm={T}", "--content_layer=1", "--classifier_pool=20", "--cache_dir={C}/cache"]
BASE = {
    "st": _TINY_ST + ["--policy_lm={T}", "--source_token=<s>", "--steps=2", "--dev_limit=1",
                      "--test_limit=1", "--num_samples=2", "--num_bootstraps=2",
                      "--eval_samples=2", "--prompt_length=2", "--prompts_per_step=2",
                      "--mlp_hidden=16", "--replay_batch=4", "--replay_capacity=16",
                      "--filter_top_k=50", "--workdir={C}/w"],
    "est": _TINY_ST + ["--test_limit=2"],
    "ti": ["--clip=tiny", "--policy_lm={T}", "--source_token=<s>", "--image={I}", "--steps=2",
           "--workdir={C}/w"],
    "few": FEW_BASE["few"],
    "snr": _TINY_ST + ["--policy_lm={T}", "--source_token=<s>", "--random_prompts=2",
                       "--sources=2", "--samples=2", "--greedy_sources=2",
                       "--output_json={C}/snr.json"],
    "report": ["--runs=" + os.path.join(REPO, "docs", "grid", "sst-2", "pin_seed0")],
}
OUT = "--outputs={C}/o.txt"
BIG = "100000000000000000000"

# (launcher, case id, extra flags, texts the error line must contain, set-up of the case folder)
CASES = [
    # style transfer
    ("st", "style_classifier_causal_lm", ["--style_classifier={T}"],
     ("--style_classifier", "not a sequence classifier"), None),
    ("st", "dev_limit_negative", ["--dev_limit=-1"], ("--dev_limit", ">= 0"), None),
    ("st", "top_k_negative", ["--top_k=-1"], ("--top_k", ">= 0"), None),
    ("st", "test_limit_negative", ["--test_limit=-1"], ("--test_limit", ">= 0"), None),
    ("st", "filter_top_k_for_rlprompt", ["--method=rlprompt"], ("--filter_top_k", "rlprompt"),
     None),
    ("st", "sampling_top_k_for_pin", ["--sampling_top_k=10"], ("--sampling_top_k", "pin"), None),
    ("st", "seed_too_large", [f"--seed={BIG}"], ("--seed", "[0, 4294967295]"), None),
    ("st", "seed_not_integer", ["--seed=1e20"], ("--seed",), None),
    ("st", "replay_capacity_too_large", ["--replay_capacity=1000000000000"],
     ("--replay_capacity",), None),
    ("st", "train_file_not_utf8", ["--train_file={C}/train.txt"], ("train.txt:3", "UTF-8"),
     "train_bytes"),
    ("st", "cache_dir_is_file", ["--cache_dir={C}/f"], ("--cache_dir", "is a file"), "file_f"),
    # the style reward's signal-to-noise (issue 21)
    ("snr", "random_prompts_one", ["--random_prompts=1"], ("--random_prompts", "at least 2"),
     None),
    ("snr", "greedy_sources_too_many", ["--greedy_sources=100000"],
     ("--greedy_sources", "training pool"), None),
    ("snr", "direction_unknown", ["--direction=2to1"], ("--direction", "2to1"), None),
    ("snr", "report_missing", ["--report={C}/none.json"], ("--report", "none.json"), None),
    ("snr", "output_json_is_dir", ["--output_json={C}"], ("--output_json",), None),
    # style transfer evaluation
    ("est", "prompt_not_utf8", ["--prompt=\udcff\udcfe"], ("--prompt", "UTF-8"), None),
    ("est", "test_limit_negative", [OUT, "--test_limit=-1"], ("--test_limit", ">= 0"), "outputs"),
    ("est", "top_k_negative", ["--prompt=x", "--top_k=-1"], ("--top_k", ">= 0"), None),
    ("est", "rlprompt_outputs_and_outputs", ["--rlprompt_outputs", OUT],
     ("--rlprompt_outputs", "--outputs"), "outputs"),
    ("est", "rlprompt_outputs_and_prompt", ["--rlprompt_outputs", "--prompt=x"],
     ("--rlprompt_outputs", "--prompt"), None),
    ("est", "outputs_two_columns", [OUT], ("o.txt:1", "tab"), "outputs_tsv"),
    ("est", "outputs_nul_bytes", [OUT], ("o.txt:2", "NUL"), "outputs_nul"),
    ("est", "outputs_not_utf8", [OUT], ("o.txt:2", "UTF-8"), "outputs_bytes"),
    ("est", "outputs_thousands_of_words", [OUT], ("o.txt:1", "words"), "outputs_long"),
    ("est", "output_json_is_directory", [OUT, "--output_json={C}/out"], ("--output_json",),
     "outputs_dir_out"),
    ("est", "output_json_under_file", [OUT, "--output_json={C}/f/r.json"],
     ("--output_json", "is a file"), "outputs_file_f"),
    ("est", "output_json_read_only", [OUT, "--output_json={C}/ro/r.json"],
     ("--output_json", "not writable"), "outputs_read_only"),
    ("est", "cache_dir_is_file", [OUT, "--cache_dir={C}/f"], ("--cache_dir", "is a file"),
     "outputs_file_f"),
    ("est", "style_classifier_causal_lm", [OUT, "--style_classifier={T}"],
     ("--style_classifier", "not a sequence classifier"), "outputs"),
    # textual inversion
    ("ti", "image_400_megapixels", ["--image={C}/huge.png"],
     ("--image", "huge.png", "20000 x 20000", "limit"), "huge_png"),
    ("ti", "prompt_length_100000", ["--prompt_length=100000"],
     ("--prompt_length", "77"), None),
    ("ti", "prompt_length_past_clip_context", ["--prompt_length=100"],
     ("--prompt_length", "77"), None),
    ("ti", "pez_prompt_length_past_clip_context", ["--method=pez", "--prompt_length=76"],
     ("--prompt_length", "77"), None),
    ("ti", "filter_top_k_for_rlprompt", ["--method=rlprompt", "--filter_top_k=50"],
     ("--filter_top_k", "rlprompt"), None),
    ("ti", "sampling_top_k_for_pin", ["--sampling_top_k=10"], ("--sampling_top_k", "pin"), None),
    ("ti", "seed_too_large", [f"--seed={BIG}"], ("--seed",), None),
    ("ti", "replay_capacity_too_large", ["--replay_capacity=1000000000000"],
     ("--replay_capacity",), None),
    ("ti", "workdir_holds_run", [], ("--workdir", "--resume"), "ti_run"),
    ("ti", "resume_no_run", ["--resume"], ("--resume",), None),
    # the flags every agent launcher shares
    ("few", "filter_top_k_for_rlprompt", ["--method=rlprompt"], ("--filter_top_k", "rlprompt"),
     None),
    ("few", "sampling_top_k_for_pin", ["--sampling_top_k=10"], ("--sampling_top_k", "pin"), None),
    ("few", "seed_too_large", [f"--seed={BIG}"], ("--seed",), None),
    ("few", "replay_capacity_too_large", ["--replay_capacity=1000000000000"],
     ("--replay_capacity",), None),
    ("report", "out_is_file", ["--out={C}/f"], ("--out", "is a file"), "file_f"),
]


def _png_header(path: str, width: int, height: int) -> None:
  """A PNG whose header claims width x height pixels (Pillow checks the size when opening)."""
  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def _setup(folder: str, kind: str | None) -> None:
  os.makedirs(folder, exist_ok=True)
  path = lambda name: os.path.join(folder, name)
  if kind and kind.startswith("outputs"):
    with open(path("o.txt"), "w") as f:
      f.write("the food was great .\nthe staff were kind .\n")
    kind = kind[len("outputs_"):] or None
  if kind == "file_f":
    open(path("f"), "w").close()
  elif kind == "dir_out":
    os.makedirs(path("out"))
  elif kind == "read_only":
    os.makedirs(path("ro"))
    os.chmod(path("ro"), 0o555)
  elif kind == "train_bytes":
    with open(path("train.txt"), "wb") as f:
      f.write(b"good food .\nnice place .\nbad \xff service .\n")
  elif kind == "tsv":
    with open(path("o.txt"), "w") as f:
      f.write("the food was great .\t1\nthe staff were kind .\t1\n")
  elif kind == "nul":
    with open(path("o.txt"), "w") as f:
      f.write("the food was great .\nthe staff\0 were kind .\n")
  elif kind == "bytes":
    with open(path("o.txt"), "wb") as f:
      f.write(b"the food was great .\nthe staff \xfe were kind .\n")
  elif kind == "long":
    with open(path("o.txt"), "w") as f:
      f.write("great " * 5000 + "\nthe staff were kind .\n")
  elif kind == "huge_png":
    _png_header(path("huge.png"), 20000, 20000)
  elif kind == "ti_run":      # target 1 of an earlier run with a (fake) checkpoint
    os.makedirs(os.path.join(folder, "w", "00-dot", "checkpoints", "2"))


def _image(folder: str) -> str:
  import numpy as np  # noqa: PLC0415
  from PIL import Image  # noqa: PLC0415
  path = os.path.join(folder, "dot.png")
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(path)
  return path


@pytest.fixture(scope="module")
def table(tmp_path_factory, tiny_gpt2_dir, tiny_roberta_dir, data_roots):
  """{(launcher, case id): driver result}, each launcher's cases run in one process."""
  root = tmp_path_factory.mktemp("bad_inputs_st_ti")
  values = {"T": tiny_gpt2_dir, "R": tiny_roberta_dir, "D": data_roots["good"],
            "I": _image(str(root))}
  return run_table(root, CASES, values, LAUNCHERS, BASE, setup=_setup)


@pytest.mark.parametrize("launcher,name,extra,expected,kind", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input_is_one_line_exit_2(table, launcher, name, extra, expected, kind):
  del extra
  if kind and kind.endswith("read_only") and os.geteuid() == 0:
    pytest.skip("root writes into a read-only directory")
  result = table[(launcher, name)]
  lines = result["stderr"].splitlines()
  assert result["code"] == 2, result["stderr"][-3000:]
  assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
  assert "Traceback" not in result["stderr"]
  for text in expected:
    assert text in lines[0], lines[0]
  assert result["after"] == result["before"], "the failed run left files behind"


def _full_disk(monkeypatch, only_results: bool):
  """fsync fails with ENOSPC (as on a full disk): for every file, or only for the results file's
  temporary copy (`writers.write_file`'s `.<name>.<hex>.tmp`: the disk fills up during the
  scoring)."""
  fsync = os.fsync

  def full(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if not only_results or name.endswith(".tmp"):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return fsync(fd)
  monkeypatch.setattr(os, "fsync", full)


def _results_config(which, tmp_path, tiny_gpt2_dir, data_roots):
  from hpprompt.launch import evaluate  # noqa: PLC0415
  from hpprompt.launch import style_transfer  # noqa: PLC0415
  out = str(tmp_path / "r.json")
  if which == "evaluate_prompt":
    return evaluate.run, evaluate.EvalConfig(prompts=(" It was",), task_lm=tiny_gpt2_dir,
                                             data_dir=data_roots["good"], split="dev",
                                             output=out), "--output"
  (tmp_path / "o.txt").write_text("the food was great .\nthe staff were kind .\n")
  cfg = style_transfer.EvaluateConfig(outputs=str(tmp_path / "o.txt"), task_lm=tiny_gpt2_dir,
                                      content_layer=1, classifier_pool=20, test_limit=2,
                                      cache_dir=str(tmp_path / "cache"), output_json=out)
  return style_transfer.evaluate, cfg, "--output_json"


@pytest.mark.parametrize("which", ["evaluate_prompt", "evaluate_style_transfer"])
def test_full_disk_refused_before_scoring(which, tmp_path, tiny_gpt2_dir, data_roots,
                                          monkeypatch, capsys):
  from hpprompt.launch import cli  # noqa: PLC0415
  fn, cfg, flag = _results_config(which, tmp_path, tiny_gpt2_dir, data_roots)
  _full_disk(monkeypatch, only_results=False)
  with pytest.raises(SystemExit) as e:
    cli.run_main(fn, cfg)
  out, err = capsys.readouterr()
  assert e.value.code == 2 and len(err.splitlines()) == 1, err
  assert err.startswith(f"error: {flag}: cannot write") and "No space left" in err, err
  assert out == "" and sorted(os.listdir(tmp_path)) == sorted(
      ["o.txt"] if which != "evaluate_prompt" else []), "scored, or left files behind"


@pytest.mark.parametrize("which", ["evaluate_prompt", "evaluate_style_transfer"])
def test_late_write_failure_prints_the_metrics(which, tmp_path, tiny_gpt2_dir, data_roots,
                                               monkeypatch, capsys):
  """The disk fills up while scoring: the metrics are printed, then the one error line (exit 2),
  and no partial or 0-byte results file is left."""
  from hpprompt.launch import cli  # noqa: PLC0415
  fn, cfg, flag = _results_config(which, tmp_path, tiny_gpt2_dir, data_roots)
  _full_disk(monkeypatch, only_results=True)
  with pytest.raises(SystemExit) as e:
    cli.run_main(fn, cfg)
  out, err = capsys.readouterr()
  assert e.value.code == 2 and len(err.splitlines()) == 1, err
  assert err.startswith(f"error: {flag}: cannot write") and "printed above" in err, err
  shown = json.loads(out[out.index("["):] if which == "evaluate_prompt" else out[out.index("{"):])
  if which == "evaluate_prompt":
    assert shown[0]["prompt"] == " It was" and 0 <= shown[0]["accuracy"] <= 1
  else:
    assert shown["num_outputs"] == 2 and 0 <= shown["style"] <= 100
  assert not [n for n in os.listdir(tmp_path) if n.startswith("r.json")]


def test_outputs_without_a_scored_token_have_no_perplexity(tmp_path, tiny_gpt2_dir, capsys):
  """Outputs of one token each: perplexity is undefined; null and one note line, no NumPy
  warning, no NaN in the results."""
  import warnings  # noqa: PLC0415
  from hpprompt.launch import style_transfer  # noqa: PLC0415
  (tmp_path / "o.txt").write_text("a\nb\n")
  cfg = style_transfer.EvaluateConfig(outputs=str(tmp_path / "o.txt"), task_lm=tiny_gpt2_dir,
                                      content_layer=1, classifier_pool=20, test_limit=2,
                                      cache_dir=str(tmp_path / "cache"))
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    results = style_transfer.evaluate(cfg)
  assert results["ppl"] is None and results["num_outputs"] == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["note: no output has two or more tokens, so their perplexity is undefined "
                 "(ppl null)."]


def test_tfds_set_offline_fails_fast(tmp_path, tiny_gpt2_dir, monkeypatch, capsys):
  """A tensorflow-datasets set that is not prepared, without network: one line naming the flag
  and the host, at once, without a download attempt (tfds retries for minutes)."""
  import socket  # noqa: PLC0415
  import time  # noqa: PLC0415
  tfds = pytest.importorskip("tensorflow_datasets")
  from hpprompt.launch import cli  # noqa: PLC0415
  from hpprompt.launch import soft_prompt  # noqa: PLC0415

  def offline(address, *args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

  def download(*args, **kwargs):
    raise AssertionError("tried to download")
  monkeypatch.setattr(socket, "create_connection", offline)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download)
  cfg = soft_prompt.BaselineConfig(task_lm=tiny_gpt2_dir, dataset="glue/sst2", k_per_class=8,
                                   data_dir=str(tmp_path / "tfds"), steps=2,
                                   workdir=str(tmp_path / "w"))
  start = time.time()
  with pytest.raises(SystemExit) as e:
    cli.run_main(soft_prompt.run, cfg)
  err = capsys.readouterr().err.strip()
  assert e.value.code == 2 and len(err.splitlines()) == 1, err
  assert err.startswith("error: --data_dir: glue/sst2 is not prepared"), err
  assert "cannot be reached" in err, err
  assert time.time() - start < 60
