"""The package's shape: its parts, the imports between them that must never happen, no cycles,
and a chapter named by every module.

The parts and their rules are written for readers in README.md ("How the package is
organised"). Every import counts: absolute or relative, at the top of a file or inside a
function. Each rule is shown to catch a planted violation, so none of them can pass vacuously.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dcu"

#: The parts of dcu, by the first name under ``dcu`` (a top-level module or a sub-package).
PARTS = {
    "Signal": {"stft", "audio", "level"},
    "Layers": {"complex_nn", "masks"},
    "Objectives": {"losses"},
    "Model": {"architectures", "unet"},
    "Engine": {"engine", "stream"},  # stream: the engine's model run hop by hop
    "Store": {"store"},
    "Data": {"data", "corpus", "mixing", "augment", "download", "librispeech"},
    "Metrics": {"metrics", "composite", "baselines", "results"},
    "Training": {"training"},
    "Jobs": {"jobs"},
    "Experiments": {"ablation"},
    "Figures": {"plots"},
    "CLI": {"cli", "__main__"},
    "Root": {"__init__"},  # the package itself: dcu.DCUnet, dcu.save, dcu.load
    "Scripts": {"scripts"},
    "Base": {"base", "version"},
}
ALL = set(PARTS)

#: The rules: (name, the parts it binds, the parts they never import).
RULES = [
    ("Layers and Model never import Engine, Store, Data or Jobs",
     {"Layers", "Model"}, {"Engine", "Store", "Data", "Jobs"}),
    ("Layers never import Model", {"Layers"}, {"Model"}),
    ("Signal imports no Layers or Model", {"Signal"}, {"Layers", "Model"}),
    ("Objectives import no Model", {"Objectives"}, {"Model"}),
    ("Data never imports Model, Engine or Store", {"Data"}, {"Model", "Engine", "Store"}),
    ("Metrics never import Model or Data", {"Metrics"}, {"Model", "Data"}),
    ("Engine never imports Store", {"Engine"}, {"Store"}),
    ("Store never imports Data, Jobs or Engine", {"Store"}, {"Data", "Jobs", "Engine"}),
    ("Training never imports Jobs, the CLI or the scripts", {"Training"}, {"Jobs", "CLI", "Scripts"}),
    ("Jobs never import Training, the CLI or the scripts", {"Jobs"}, {"Training", "CLI", "Scripts"}),
    ("Base imports nothing of dcu", {"Base"}, ALL - {"Base"}),
    ("Nothing in dcu imports the scripts", ALL - {"Scripts"}, {"Scripts"}),
    ("Nothing in dcu imports the root package but the CLI", ALL - {"CLI", "Root"}, {"Root"}),
]


# -- the checker ------------------------------------------------------------------------------
def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``dcu/jobs/enhance.py`` -> ``dcu.jobs.enhance``; ``dcu/jobs/__init__.py`` -> ``dcu.jobs``."""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_sources(package: Path = PACKAGE) -> dict:
    """``{module name: (source text, is a package's __init__)}`` for every file of the package."""
    return {module_name(p, package): (p.read_text(), p.name == "__init__.py")
            for p in sorted(package.rglob("*.py"))}


def imports_of(name: str, source: str, is_package: bool, modules: set) -> set:
    """The dcu modules that module ``name`` imports anywhere in ``source`` (inside functions too),
    absolute or relative, each resolved to the module it names (``from dcu import metrics`` is
    ``dcu.metrics``; ``from dcu import DCUnet`` is ``dcu``)."""
    root = name.split(".")[0]
    here = name if is_package else name.rpartition(".")[0]  # the package relative imports start in
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                if not base:
                    continue  # beyond the package: not a dcu import
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != root:
                continue
            while target not in modules and "." in target:  # a name inside a module
                target = target.rpartition(".")[0]
            if target != name:
                found.add(target)
    return found


def import_graph(sources: dict) -> dict:
    """``{module: {modules it imports}}`` of the package whose ``sources`` are given."""
    modules = set(sources)
    return {name: imports_of(name, text, is_pkg, modules) for name, (text, is_pkg) in sources.items()}


def part_of(module: str) -> str | None:
    """The part a module belongs to, by its first name under the package."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "__init__"
    return next((part for part, names in PARTS.items() if first in names), None)


def violations(graph: dict) -> list:
    """``(rule, importer, imported)`` for every import a rule forbids."""
    found = []
    for importer, deps in graph.items():
        for dep in sorted(deps):
            for rule, who, never in RULES:
                if part_of(importer) in who and part_of(dep) in never:
                    found.append((rule, importer, dep))
    return found


SOURCES = read_sources()
GRAPH = import_graph(SOURCES)


# -- the package as it is ---------------------------------------------------------------------
def test_every_module_belongs_to_a_part():
    assert not [m for m in GRAPH if part_of(m) is None], "add them to PARTS (and to README.md)"


def test_every_part_has_modules():
    assert {part_of(m) for m in GRAPH} == ALL


@pytest.mark.parametrize("rule", [r[0] for r in RULES])
def test_no_import_breaks_the_rule(rule):
    broken = [f"{a} imports {b}" for name, a, b in violations(GRAPH) if name == rule]
    assert not broken, f"{rule}: {broken}"


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
    # a package's __init__ that gathers its modules' names is not a cycle of ideas
    cycles = {c for c in cycles if not any(a != b and b.startswith(a + ".") for a in c for b in c)}
    assert not cycles, sorted(map(sorted, cycles))


@pytest.mark.parametrize("name", sorted(n for n, (_, pkg) in SOURCES.items()
                                        if not pkg and n.split(".")[1] not in ("scripts", "__main__",
                                                                                "version")))
def test_modules_name_their_chapter(name):
    doc = ast.get_docstring(ast.parse(SOURCES[name][0])) or ""
    assert "Book:" in doc or "book/" in doc, f"{name}: the docstring names no chapter"


# -- the checker catches what it claims to ----------------------------------------------------
def _pick(parts: set, but: str = "") -> str:
    """A module of one of ``parts`` (a plain module, not a package's __init__, where one exists)."""
    names = sorted(n for n in SOURCES if part_of(n) in parts and n != but)
    plain = [n for n in names if not SOURCES[n][1]]
    return (plain or names)[0]


def _statements(importer: str, target: str) -> dict:
    """An absolute and a relative import of ``target`` as written in module ``importer``."""
    package = importer if SOURCES[importer][1] else importer.rpartition(".")[0]
    dots = "." * len(package.split("."))
    parent, _, last = target.rpartition(".")
    inner = parent.partition(".")[2]  # the parent's name under dcu ("" at the top)
    if not parent:  # the root package itself
        return {"absolute": "import dcu", "relative": f"from {dots} import DCUnet"}
    return {"absolute": f"from {parent} import {last}", "relative": f"from {dots}{inner} import {last}"}


PLANTED = [(rule, kind, where) for rule, _, _ in RULES
           for kind in ("absolute", "relative") for where in ("top", "function")]


@pytest.mark.parametrize("rule,kind,where", PLANTED)
def test_a_planted_violation_of_each_rule_is_caught(rule, kind, where):
    _, who, never = next(r for r in RULES if r[0] == rule)
    importer = _pick(who)
    target = _pick(never, but=importer)
    stmt = _statements(importer, target)[kind]
    text, is_pkg = SOURCES[importer]
    planted = text + (f"\n{stmt}\n" if where == "top" else f"\n\ndef _planted():\n    {stmt}\n")
    graph = import_graph({**SOURCES, importer: (planted, is_pkg)})
    assert target in graph[importer], f"{stmt!r} in {importer} was not seen as importing {target}"
    assert (rule, importer, target) in violations(graph), f"{rule}: {stmt!r} in {importer} not caught"
    assert not violations(GRAPH)  # and the package itself breaks none


def test_relative_imports_resolve_like_python():
    modules = {"dcu", "dcu.jobs", "dcu.jobs.enhance", "dcu.store", "dcu.store.checkpoint", "dcu.unet"}
    src = ("from ..store.checkpoint import load\nfrom .. import unet\nfrom . import enhance\n"
           "from dcu import DCUnet\nimport numpy\n")
    assert imports_of("dcu.jobs.evaluate", src, False, modules | {"dcu.jobs.evaluate"}) == \
        {"dcu.store.checkpoint", "dcu.unet", "dcu.jobs.enhance", "dcu"}
    assert imports_of("dcu.jobs", "from .enhance import x\n", True, modules) == {"dcu.jobs.enhance"}
