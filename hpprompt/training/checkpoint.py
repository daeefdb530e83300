"""Orbax checkpoints of pytrees plus a JSON metadata record, in `<workdir>/checkpoints/<step>/`.

Every saved step gets a manifest (`hpprompt_checksums.json`: SHA-256 and size of every file Orbax
wrote), written after Orbax has finished. A step whose manifest is missing or whose files differ
from it (truncated, flipped bytes, deleted) is damaged: `restore_latest` moves it aside to
`checkpoints.damaged/` and falls back to the newest intact step.
"""
import hashlib
import json
import os
import shutil

import jax
import orbax.checkpoint as ocp

MANIFEST = "hpprompt_checksums.json"


class CheckpointError(ValueError):
  """No intact checkpoint to restore, or a checkpoint that does not belong to this run."""


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _files(directory: str) -> list[str]:
  out = []
  for root, _, names in os.walk(directory):
    out += [os.path.relpath(os.path.join(root, n), directory) for n in names if n != MANIFEST]
  return sorted(out)


def write_manifest(directory: str) -> None:
  """Checksums of every file under `directory` (written atomically, last)."""
  record = {name: {"sha256": _sha256(os.path.join(directory, name)),
                   "bytes": os.path.getsize(os.path.join(directory, name))}
            for name in _files(directory)}
  tmp = os.path.join(directory, MANIFEST + ".tmp")
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(directory, MANIFEST))


def check_manifest(directory: str) -> str | None:
  """None if every file matches the manifest, else what is wrong (one line)."""
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    return "no checksum manifest (the save did not finish)"
  try:
    with open(path) as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    return f"unreadable checksum manifest ({type(e).__name__})"
  for name, want in sorted(record.items()):
    file = os.path.join(directory, name)
    if not os.path.exists(file):
      return f"{name} is missing"
    if os.path.getsize(file) != want["bytes"]:
      return f"{name} has {os.path.getsize(file)} bytes, {want['bytes']} were saved"
    if _sha256(file) != want["sha256"]:
      return f"{name} does not match its checksum"
  return None


class Checkpointer:
  """Saves named pytrees and JSON metadata every few steps; restores the newest intact one."""

  def __init__(self, directory: str, max_to_keep: int = 3, *, write: bool = True):
    self.directory = os.path.abspath(directory)
    self.write = write           # this process writes manifests (process 0 of several hosts)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           cleanup_tmp_directories=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def steps(self) -> list[int]:
    """Saved steps, newest first."""
    return sorted(self.manager.all_steps(), reverse=True)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, trees: dict, meta: dict) -> None:
    args = {name: ocp.args.StandardSave(tree) for name, tree in trees.items()}
    args["meta"] = ocp.args.JsonSave(meta)
    self.manager.save(step, args=ocp.args.Composite(**args), force=True)
    self.manager.wait_until_finished()
    if self.write:
      write_manifest(self.step_dir(step))

  def restore(self, step: int, templates: dict) -> tuple[dict, dict]:
    """Restores the pytrees named in `templates` (arrays or ShapeDtypeStructs) and the metadata."""
    abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, t)
                for name, t in templates.items()}
    args = {name: ocp.args.StandardRestore(t) for name, t in abstract.items()}
    args["meta"] = ocp.args.JsonRestore()
    out = self.manager.restore(step, args=ocp.args.Composite(**args))
    return {name: out[name] for name in templates}, out["meta"]

  def set_aside(self, step: int) -> str:
    """Moves a damaged step out of the way (to `checkpoints.damaged/`); returns where it went."""
    target_root = self.directory + ".damaged"
    os.makedirs(target_root, exist_ok=True)
    target, n = os.path.join(target_root, str(step)), 1
    while os.path.exists(target):
      target, n = os.path.join(target_root, f"{step}-{n}"), n + 1
    shutil.move(self.step_dir(step), target)
    self.manager.reload()
    return target

  def restore_latest(self, templates: dict, log=print) -> tuple[int, dict, dict] | None:
    """(step, trees, meta) of the newest intact checkpoint, None if there is none at all.

    Damaged steps are set aside and reported through `log`; CheckpointError if every one is.
    """
    steps = self.steps()
    if not steps:
      return None
    damaged = []
    for step in steps:
      problem = check_manifest(self.step_dir(step))
      if problem is None:
        try:
          trees, meta = self.restore(step, templates)
          return step, trees, meta
        except Exception as e:  # noqa: BLE001  (any reader error: this step is unusable)
          problem = f"unreadable ({type(e).__name__})"
      where = self.set_aside(step)
      damaged.append(step)
      log(f"checkpoint step {step} is damaged ({problem}); moved to {where}, falling back to an "
          "earlier one")
    raise CheckpointError(f"no intact checkpoint in {self.directory} (damaged steps {damaged} "
                          "were moved aside); start the run again without --resume.")

  def close(self) -> None:
    self.manager.close()
