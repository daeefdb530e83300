"""Runs the results grid in this process from a JSON file of `GridConfig` fields: one machine of
the shard test (tests/orchestration/grid_shard_test.py).

  python -m tests.orchestration.grid_worker FIELDS.json
"""
import json
import sys

from hpprompt.orchestration import grid


def main(path: str) -> None:
  with open(path) as f:
    fields = json.load(f)
  for name in ("datasets", "seeds", "methods", "shard"):
    if fields.get(name) is not None:
      fields[name] = tuple(fields[name])
  grid.run(grid.GridConfig(**fields))


if __name__ == "__main__":
  main(sys.argv[1])
