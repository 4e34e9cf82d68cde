"""The layout keeps its shape: no import circles, no upward imports, no private names taken
across modules, and README.md's layout table names exactly the tree.

The import graph is read from the AST of every module under src/textgate, counting
module-level imports and the lazy ones inside functions (the code defers heavy imports).
Imports under ``if TYPE_CHECKING:`` never run, so they cannot close a circle: the circle test
leaves them out, the layering test counts them too. Imports made through ``importlib`` (the
lazy faces of ``textgate`` and ``textgate.serve``) are not edges.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "textgate"

# The layers, lowest first. A module may import from a lower layer, from its own room (the
# top-level package or module it belongs to), and from another room of its own layer only
# where the layer is in SIDEWAYS. The capabilities stand alone: none imports another.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("textgate.errors", "textgate._internal")),
    ("records", ("textgate.text", "textgate.outputs", "textgate.hardware", "textgate.latency", "textgate.data",
                 "textgate.slices", "textgate.predictions", "textgate.report")),
    ("model", ("textgate.model",)),
    ("infer", ("textgate.infer",)),
    ("evaluation", ("textgate.evaluation",)),
    ("capabilities", ("textgate.gate", "textgate.calibrate", "textgate.audit", "textgate.lock", "textgate.guard",
                      "textgate.drift")),
    ("serve", ("textgate.serve",)),
    ("adapters", ("textgate.cli", "textgate")),
)
SIDEWAYS = frozenset({"foundation", "records"})
# Third-party libraries that only one room may import.
EXCLUSIVE_IMPORTS = {"transformers": "textgate.model", "peft": "textgate.model"}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module
    target: str  # imported textgate module (a package means its __init__)
    name: str  # what was imported, for messages
    line: int
    typing_only: bool


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def resolve(name: str) -> str:
    """The module that ``name`` (a module, or a name inside one) lives in."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def typing_only_nodes(tree: ast.AST) -> set[int]:
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(n) for statement in node.body for n in ast.walk(statement))
    return inside


def imports(module: str, path: Path) -> Iterator[tuple[str, str, int, bool]]:
    """(imported module or name, the name as written, line, typing only) of every import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = typing_only_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, alias.name, node.lineno, id(node) in typing_only
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:
                yield f"{origin}.{alias.name}", alias.name, node.lineno, id(node) in typing_only


def import_edges() -> list[Edge]:
    edges = []
    for module, path in MODULES.items():
        for imported, name, line, typing_only in imports(module, path):
            if imported == "textgate" or imported.startswith("textgate."):
                target = resolve(imported)
                if target != module:
                    edges.append(Edge(module, target, name, line, typing_only))
    return edges


EDGES = import_edges()


def room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer(module: str) -> tuple[int, str]:
    for index, (name, rooms) in enumerate(LAYERS):
        if room(module) in rooms:
            return index, name
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py LAYERS; add its room to one")


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_no_import_circles():
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for edge in EDGES:
        if not edge.typing_only:
            graph[edge.source].add(edge.target)
    circles = strongly_connected(graph)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in circles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm; the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_imports_go_down_the_layers():
    upward = []
    for edge in EDGES:
        if room(edge.source) == room(edge.target):
            continue
        (source_index, source_layer), (target_index, target_layer) = layer(edge.source), layer(edge.target)
        if target_index > source_index or (target_index == source_index and source_layer not in SIDEWAYS):
            upward.append(f"{edge.source}:{edge.line} imports {edge.name} from {edge.target} "
                          f"({source_layer} -> {target_layer})")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_model_imports_no_capability():
    """The loader reads the lock and calibration files through textgate.model's own modules."""
    assert not [e for e in EDGES if room(e.source) == "textgate.model" and layer(e.target)[0] > layer(e.source)[0]]


def test_no_private_name_is_imported_from_another_module():
    """A name another module needs is public where it lives; tests may still pin private helpers."""
    taken = []
    for edge in EDGES:
        if edge.name.startswith("_"):
            taken.append(f"{edge.source}:{edge.line} imports {edge.name} from {edge.target}")
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for imported, name, line, _ in imports("benchmarks", path):
            if imported.startswith("textgate.") and name.startswith("_"):
                taken.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {imported.rpartition('.')[0]}")
    assert not taken, "private names imported across modules:\n" + "\n".join(taken)


@pytest.mark.parametrize("library", sorted(EXCLUSIVE_IMPORTS))
def test_only_one_room_imports(library):
    owner = EXCLUSIVE_IMPORTS[library]
    others = sorted({f"{module}:{line}" for module, path in MODULES.items() if room(module) != owner
                     for imported, _, line, _ in imports(module, path)
                     if imported == library or imported.startswith(f"{library}.")})
    assert not others, f"only {owner} may import {library}; also: {', '.join(others)}"


def layout_table() -> list[list[str]]:
    """The paths of each row of README.md's "## Layout" table (backticked, in the first cell;
    later ones without a folder are relative to the first one's folder)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        paths = re.findall(r"`([^`]+)`", line.split("|")[1])
        first = paths[0]
        folder = first if first.endswith("/") else first.rpartition("/")[0] + "/"
        rows.append([first] + [p if "/" in p.rstrip("/") else folder + p for p in paths[1:]])
    return rows


def test_readme_layout_names_only_what_exists():
    missing = [path for row in layout_table() for path in row if not (ROOT / path).exists()]
    assert not missing, f"README.md's layout table names paths that do not exist: {missing}"


def test_readme_layout_names_every_package_and_module():
    named = {path.rstrip("/") for row in layout_table() for path in row}
    rooms = [path for path in sorted(PACKAGE.iterdir())
             if (path.suffix == ".py") or (path / "__init__.py").is_file()]
    packages = [path.parent for path in sorted(PACKAGE.rglob("__init__.py")) if path.parent != PACKAGE]

    def covered(path: Path) -> bool:
        relative = path.relative_to(ROOT)
        return any(relative == Path(n) or Path(n) in relative.parents for n in named)

    absent = [str(p.relative_to(ROOT)) for p in rooms + packages if not covered(p)]
    assert not absent, f"README.md's layout table does not name: {absent}"


def test_each_test_folder_is_named_after_the_room_it_pins():
    special = {"records": "the shared modules", "internal": "textgate._internal"}
    folders = [path.name for path in (ROOT / "tests").iterdir() if path.is_dir() and not path.name.startswith((".", "_"))]
    unknown = [name for name in folders if name not in special and not (PACKAGE / name / "__init__.py").is_file()
               and not (PACKAGE / f"{name}.py").is_file()]
    assert not unknown, f"tests/{unknown[0]}/ pins no package of src/textgate; name it after the package it tests"
