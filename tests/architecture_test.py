"""The house of `hpprompt/`: rooms (the packages directly under it) on floors, imports only down.

Every module under hpprompt/ is parsed with `ast` (nothing is imported), its `hpprompt.*` imports
are collected (`import hpprompt.x`, `from hpprompt.x import y`, `from hpprompt import x`, relative
imports, and imports inside functions too), and two rules are checked on the graph of rooms:
  (a) no cycle between rooms;
  (b) every import goes to the same or a lower floor;
and, inside a room too, (c) no cycle between modules (a package's own `__init__` aside: a module
importing its package is not a circle).
The checks are also run on synthetic bad graphs, so that they can fail.
"""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hpprompt")

# Floor of each room (README "Layout"). A room may import its own floor and the floors below.
FLOORS = {
    "ops": 0, "training": 0,       # pure jnp math; run bookkeeping, checkpoints, device mesh
    "models": 1,                   # NNX models, converters, tokenizers
    "metrics": 2, "report": 2,     # scores and naturalness metrics; run reports
    "tasks": 3,                    # prompt tasks: data, templates, scorers, rewards
    "agent": 4, "gradient": 4,     # the methods: the RL agent (PIN, RLPrompt); gradient-based ones
    "launch": 5,                   # flags -> config -> one call
    "orchestration": 6,            # the results grid over launchers, shards, status
}


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, os.path.dirname(ROOT))[:-len(".py")].split(os.sep)
  if rel[-1] == "__init__":
    rel = rel[:-1]
  return ".".join(rel)


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
  """Dotted names of the hpprompt modules (or names in them) imported anywhere in `tree`."""
  out = set()
  package = module if is_package else module.rpartition(".")[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:    # relative: resolve against this module's package
        parts = package.split(".")
        base = parts[:len(parts) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
      else:
        target = node.module or ""
      out.add(target)
      out.update(f"{target}.{a.name}" for a in node.names)   # `from hpprompt import tasks`
  return {name for name in out if name == "hpprompt" or name.startswith("hpprompt.")}


def _room(dotted: str) -> str | None:
  parts = dotted.split(".")
  return parts[1] if len(parts) > 1 else None


def module_graph() -> dict[str, set[str]]:
  """{module: hpprompt names it imports} for every module under hpprompt/."""
  graph = {}
  for folder, _, files in os.walk(ROOT):
    for name in sorted(files):
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
          tree = ast.parse(f.read(), path)
        module = _module_name(path)
        graph[module] = _imports(tree, module, name == "__init__.py")
  return graph


def room_edges(graph: dict[str, set[str]], rooms) -> dict[tuple[str, str], list[str]]:
  """{(room, other room): ['module -> import', ...]} for imports between two rooms."""
  edges = {}
  for module, names in graph.items():
    src = _room(module)
    for name in names:
      dst = _room(name)
      if src in rooms and dst in rooms and dst != src:
        edges.setdefault((src, dst), []).append(f"{module} -> {name}")
  return edges


def module_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
  """{(module, imported module): []}; `from m import name` counts as importing m."""
  def resolve(name):
    while name and name not in graph:
      name = name.rpartition(".")[0]
    return name
  edges = {}
  for module, names in graph.items():
    for name in names:
      target = resolve(name)
      if target and target != module and not module.startswith(target + "."):
        edges[(module, target)] = []
  return edges


def cycles(edges) -> list[list[str]]:
  """One cycle per strongly connected group of two or more rooms (Tarjan)."""
  nodes = sorted({n for e in edges for n in e})
  succ = {n: sorted(d for s, d in edges if s == n) for n in nodes}
  index, low, stack, on_stack, groups = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in succ[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      group = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        group.append(w)
        if w == v:
          break
      if len(group) > 1:
        groups.append(sorted(group))

  for v in nodes:
    if v not in index:
      visit(v)
  return groups


def upward(edges, floors) -> list[str]:
  """Imports from a room to a room on a higher floor, as readable lines."""
  return [f"{src} (floor {floors[src]}) imports {dst} (floor {floors[dst]}): {', '.join(how)}"
          for (src, dst), how in sorted(edges.items()) if floors[dst] > floors[src]]


def test_every_room_has_a_floor():
  rooms = {d for d in os.listdir(ROOT)
           if os.path.isfile(os.path.join(ROOT, d, "__init__.py"))}
  assert rooms == set(FLOORS), "give a new room a floor here and a line in the README's Layout"


def test_no_cycle_between_rooms():
  assert cycles(room_edges(module_graph(), FLOORS)) == []


def test_no_cycle_between_modules():
  assert cycles(module_edges(module_graph())) == []


def test_every_import_goes_to_the_same_or_a_lower_floor():
  assert upward(room_edges(module_graph(), FLOORS), FLOORS) == []


def test_every_module_is_read():
  graph = module_graph()
  assert {"hpprompt", "hpprompt.gradient.pez", "hpprompt.orchestration.grid",
          "hpprompt.tasks.clip_task", "hpprompt.models.convert.core"} <= set(graph)
  # the walker sees the usual import forms
  assert "hpprompt.models.base.verbalizer_logits" in graph["hpprompt.metrics.flops"]
  assert "hpprompt.gradient" in graph["hpprompt.launch.soft_prompt"]


def test_import_forms_and_relative_imports():
  src = ("import hpprompt.ops.shannon\nfrom hpprompt import tasks\n"
         "def f():\n  from hpprompt.models.base import CausalLM\n"
         "from . import sibling\nfrom ..report import runs\nimport numpy\n")
  names = _imports(ast.parse(src), "hpprompt.metrics.x", is_package=False)
  assert {_room(n) for n in names} == {None, "ops", "tasks", "models", "metrics", "report"}
  assert "hpprompt.metrics.sibling" in names and "hpprompt.report.runs" in names


@pytest.mark.parametrize("graph, bad_cycle, bad_up", [
    # metrics reaching up into a task: an upward import and a circle
    ({"hpprompt.metrics.flops": {"hpprompt.tasks.scoring"},
      "hpprompt.tasks.scoring": {"hpprompt.metrics.flops"}}, [["metrics", "tasks"]], 1),
    # launch <-> gradient through two modules: a circle, gradient looks up at launch
    ({"hpprompt.launch.textual_inversion": {"hpprompt.gradient.pez_clip"},
      "hpprompt.gradient.pez_clip": {"hpprompt.launch", "hpprompt.launch.cli.FlagError"}},
     [["gradient", "launch"]], 1),
    # a longer circle: ops -> models -> tasks -> ops
    ({"hpprompt.ops.a": {"hpprompt.models.b"}, "hpprompt.models.b": {"hpprompt.tasks.c"},
      "hpprompt.tasks.c": {"hpprompt.ops"}}, [["models", "ops", "tasks"]], 2),
    # only downward: clean
    ({"hpprompt.orchestration.grid": {"hpprompt.launch.fewshot", "hpprompt.report"},
      "hpprompt.launch.fewshot": {"hpprompt.agent.trainer"}}, [], 0),
])
def test_the_checks_fail_on_a_bad_graph(graph, bad_cycle, bad_up):
  edges = room_edges(graph, FLOORS)
  assert cycles(edges) == bad_cycle
  assert len(upward(edges, FLOORS)) == bad_up


def test_a_circle_inside_a_room_fails():
  """Issue 23's circle inside launch: PEZ's CLIP search (then a launch module) imported the
  textual-inversion launcher's PEZ settings, and the launcher imported the search."""
  graph = {"hpprompt.launch": set(),
           "hpprompt.launch.textual_inversion": {"hpprompt.launch", "hpprompt.launch.search"},
           "hpprompt.launch.search": {"hpprompt.launch.textual_inversion.PEZ_CLIP"},
           "hpprompt.gradient": {"hpprompt.gradient.pez"},
           "hpprompt.gradient.pez": {"hpprompt.gradient"}}   # a module and its package: fine
  assert room_edges(graph, FLOORS) == {}
  assert cycles(module_edges(graph)) == [["hpprompt.launch.search",
                                          "hpprompt.launch.textual_inversion"]]
