"""Imports run down the floors (DESIGN.md, Floors), and no package imports one
that imports it back: shared words live on the lowest floor that needs them.

The floors, top first; a package may import its own floor's packages and any
floor below, never one above. A new package must be given a floor here.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import podnet

FLOORS = (
    ("cli", "ui", "lab", "machine", "__main__", "echo", "supervise"),  # what people run
    ("agent", "controller", "apiserver"),  # the long-running processes
    ("network", "proxy", "policy", "dns", "observe", "trace", "cni", "ipam", "streaming"),  # the subsystems
    ("api",),  # the API's semantics
    ("store",),
    ("model",),
    ("kernel",),  # the one door to the kernel
    ("errors", "gcpause"),
)
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}
ROOT = Path(podnet.__file__).parent


def _room(path: Path) -> str:
    """The package (or top-level module) a file belongs to."""
    parts = path.relative_to(ROOT).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The podnet rooms a file imports at run time, however deep in a function."""
    tree = ast.parse(path.read_text())
    for_typing = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                  for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in for_typing:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"podnet.{alias.name}" for alias in node.names] if node.module == "podnet" else [])
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("podnet.")}
    return found


def _arrows() -> dict[tuple[str, str], str]:
    """(from, to) -> one file that draws the arrow."""
    arrows = {}
    for path in sorted(ROOT.rglob("*.py")):
        room = _room(path)
        for target in _imports(path) - {room}:
            arrows.setdefault((room, target), str(path.relative_to(ROOT.parent)))
    return arrows


def test_every_package_has_a_floor() -> None:
    rooms = {_room(path) for path in ROOT.rglob("*.py")} - {"__init__"}
    assert sorted(rooms - FLOOR.keys()) == []


def test_no_import_runs_up_a_floor() -> None:
    upward = [f"{where} imports {target} ({FLOORS[FLOOR[target]][0]}'s floor, above {room}'s)"
              for (room, target), where in _arrows().items() if FLOOR[target] < FLOOR[room]]
    assert upward == []


def test_no_package_reaches_itself() -> None:
    """No cycle, however long: no package reaches, through the others, one that reaches it."""
    arrows = _arrows()
    reach = {room: {target for (source, target) in arrows if source == room} for room in FLOOR}
    for middle, start, end in itertools.product(FLOOR, repeat=3):  # Warshall's closure
        if middle in reach[start] and end in reach[middle]:
            reach[start].add(end)
    cycles = sorted(f"{a} <-> {b}" for a, b in itertools.combinations(sorted(FLOOR), 2)
                    if b in reach[a] and a in reach[b])
    assert cycles == []
