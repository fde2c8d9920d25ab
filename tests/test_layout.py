"""The package's shape: dependencies point one way, modules stay small, each names its chapter.

Layers, lowest first (STYLE.md habit 12): a module may import its own layer or lower ones, never
a higher one, and no import cycle exists (imports inside functions count: they are dependencies
too).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dcu"

LAYERS = [
    ("signal", {"stft", "base", "version", "architectures"}),
    ("layers", {"complex_nn", "masks", "losses"}),
    ("model", {"unet"}),
    ("engine", {"engine"}),
    ("store", {"store"}),
    ("data/metrics", {"audio", "augment", "corpus", "data", "download", "mixing", "metrics", "composite",
                      "baselines", "level"}),
    ("jobs", {"training", "jobs", "ablation", "plots", "results"}),
    ("cli", {"cli", "__main__", "__init__"}),
    # the maintainers' scripts (corpus build, metric validation, training drivers): they may
    # import anything in dcu, and nothing in dcu imports them
    ("scripts", {"scripts"}),
]
LEVEL = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}

#: Cycles known and owned elsewhere, each with its reason. Keep this short.
KNOWN_CYCLES: dict = {}

MAX_LINES = 300
#: Modules allowed over MAX_LINES, each with its reason (a split that would hurt, or one that
#: belongs to another change). Remove an entry as soon as its reason is gone.
LONG_MODULES: dict = {}


def unit(path: Path) -> str:
    """The layer unit of a module file: its name, or its subpackage's (``engine``, ``scripts``)."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def dcu_imports(path: Path) -> set:
    """Units of dcu that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = ([f"dcu.{a.name}" for a in node.names] if node.module == "dcu"
                     else [node.module])
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "dcu":
                found.add(parts[1] if len(parts) > 1 else "__init__")
    return found - {unit(path)}


MODULES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {}
for _path in MODULES:
    GRAPH.setdefault(unit(_path), set()).update(dcu_imports(_path))


def test_every_module_has_a_layer():
    assert set(GRAPH) <= set(LEVEL), f"add to LAYERS: {sorted(set(GRAPH) - set(LEVEL))}"


def test_no_import_points_up_a_layer():
    upward = [f"{a} ({LAYERS[LEVEL[a]][0]}) imports {b} ({LAYERS[LEVEL[b]][0]})"
              for a, deps in GRAPH.items() for b in deps if LEVEL[b] > LEVEL[a]]
    assert not upward, upward


def test_no_import_cycles():
    cycles = set()

    def visit(node, stack):
        for dep in GRAPH.get(node, ()):
            if dep in stack:
                cycles.add(frozenset(stack[stack.index(dep):]))
            elif len(stack) < len(GRAPH):
                visit(dep, stack + [dep])

    for start in GRAPH:
        visit(start, [start])
    assert cycles - set(KNOWN_CYCLES) == set(), sorted(map(sorted, cycles))


def test_the_root_package_is_imported_by_no_module():
    assert not [m for m, deps in GRAPH.items() if "__init__" in deps and m not in ("cli", "__main__")]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short_and_name_their_chapter(path):
    rel = str(path.relative_to(PACKAGE))
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES or rel in LONG_MODULES, f"{rel}: {lines} lines; split it by idea"
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    if path.name not in ("__init__.py", "__main__.py", "version.py") and path.parent == PACKAGE:
        assert "Book:" in doc or "book/" in doc, f"{rel}: the docstring names no chapter"
