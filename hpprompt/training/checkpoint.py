"""Orbax checkpoints of pytrees plus a JSON metadata record, in `<workdir>/checkpoints/<step>/`."""
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves named pytrees and JSON metadata every few steps; restores the latest into templates."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, trees: dict, meta: dict) -> None:
    args = {name: ocp.args.StandardSave(tree) for name, tree in trees.items()}
    args["meta"] = ocp.args.JsonSave(meta)
    self.manager.save(step, args=ocp.args.Composite(**args), force=True)
    self.manager.wait_until_finished()

  def restore(self, step: int, templates: dict) -> tuple[dict, dict]:
    """Restores the pytrees named in `templates` (arrays or ShapeDtypeStructs) and the metadata."""
    abstract = {name: jax.tree.map(ocp.utils.to_shape_dtype_struct, t)
                for name, t in templates.items()}
    args = {name: ocp.args.StandardRestore(t) for name, t in abstract.items()}
    args["meta"] = ocp.args.JsonRestore()
    out = self.manager.restore(step, args=ocp.args.Composite(**args))
    return {name: out[name] for name in templates}, out["meta"]

  def close(self) -> None:
    self.manager.close()
