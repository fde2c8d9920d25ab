"""The exercises' solutions check what their exercises claim.

Every chapter promises that a wrong solution fails the build, which holds only if each solution's
``assert`` can fail. Two guards:

- statically, every solution cell asserts something, and none of its asserts is one that holds
  whatever the solution computed (a value compared with itself, a length or a label set compared
  with the constants the code itself wrote, a count that is ``>= 0``, a file that exists, numbers
  that are finite);
- by execution (``slow``), a chapter's solutions are rerun with their key result perturbed
  (the result that would come out of a wrong solution), and each perturbed run must fail.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def _solutions(path: Path) -> list[tuple[str, str]]:
    """``(first line, source)`` of every cell tagged ``solution``."""
    nb = nbformat.read(path, as_version=4)
    return [(c.source.splitlines()[0], c.source) for c in nb.cells
            if "solution" in c.metadata.get("tags", [])]


def _is_len(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"


def _is_constant(node: ast.AST) -> bool:
    """A literal: a number, a string, or a list, tuple or set of literals."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_constant(e) for e in node.elts)
    return False


def _is_labels(node: ast.AST) -> bool:
    """``set(x.index)``, ``list(df.columns)``, ``x.index`` ...: labels the code itself chose."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id in {"set", "list", "tuple", "sorted"} and node.args:
        node = node.args[0]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "keys":
        node = node.func
    # the labels of a stored table; those of a computed one (x.sort_values(...).index) are a result
    return (isinstance(node, ast.Attribute) and node.attr in {"index", "columns", "keys"}
            and isinstance(node.value, (ast.Name, ast.Attribute, ast.Subscript)))


def _called(node: ast.AST) -> set[str]:
    """Names of the functions and methods a call expression calls (``np.isfinite(x).all()``:
    isfinite, all)."""
    return {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            for n in ast.walk(node) if isinstance(n, ast.Call)}


RAN_ONLY = {"exists", "is_file", "isfinite", "isinstance", "callable", "hasattr"}


def trivial_reason(test: ast.expr) -> str | None:
    """Why ``assert <test>`` holds whatever the solution computed, or None if it can fail."""
    if _is_constant(test):
        return "asserts a constant"
    if isinstance(test, ast.BoolOp):  # a and b: trivial only if every part is
        reasons = [trivial_reason(v) for v in test.values]
        return reasons[0] if all(reasons) else None
    if isinstance(test, ast.Compare):
        operands = [test.left, *test.comparators]
        dumps = [ast.dump(o) for o in operands]
        if len(set(dumps)) < len(dumps):
            return "compares a value with itself"
        if all(_is_len(o) or _is_constant(o) for o in operands):
            return "compares only lengths and constants"
        if any(_is_labels(o) for o in operands) and all(_is_labels(o) or _is_constant(o)
                                                         for o in operands):
            return "compares labels the code itself wrote"
        if len(test.ops) == 1 and (
                (isinstance(test.ops[0], ast.GtE) and _is_constant(test.comparators[0])
                 and getattr(test.comparators[0], "value", None) == 0)
                or (isinstance(test.ops[0], ast.LtE) and _is_constant(test.left)
                    and getattr(test.left, "value", None) == 0)):
            return "asserts that something is >= 0"
        return None
    if isinstance(test, ast.Call) and (ran := sorted(_called(test) & RAN_ONLY)):
        return f"asserts only that the code ran ({ran[0]})"
    return None


def trivial_asserts(source: str) -> list[str]:
    """``line: reason`` for every assert of ``source`` that cannot fail; and one entry if the
    source asserts nothing at all (no ``assert``, no ``raise AssertionError``)."""
    tree = ast.parse(source)
    found, checks = [], 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            checks += 1
            reason = trivial_reason(node.test)
            if reason:
                found.append(f"line {node.lineno}: {reason}: {ast.unparse(node.test)}")
        elif isinstance(node, ast.Raise) and node.exc is not None and \
                "AssertionError" in ast.unparse(node.exc):
            checks += 1
    if not checks:
        found.append("asserts nothing")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_asserts_something_that_can_fail(path):
    bad = {head: reasons for head, source in _solutions(path)
           if (reasons := trivial_asserts(source))}
    assert not bad, f"{path.name}: solutions whose checks cannot fail: {bad}"


@pytest.mark.parametrize("source, reason", [
    ("assert n_seeds >= 0", "asserts that something is >= 0"),
    ("assert 0 <= n", "asserts that something is >= 0"),
    ("assert len(ranks) == 3", "compares only lengths and constants"),
    ("assert len(a) == len(b) == len(c)", "compares only lengths and constants"),
    ("assert set(compare.index) == {'a', 'b'}", "compares labels the code itself wrote"),
    ("assert list(ranking.index) == ['x', 'y']", "compares labels the code itself wrote"),
    ("assert ranking == ranking", "compares a value with itself"),
    ("assert Path(done['output']).exists()", "asserts only that the code ran (exists)"),
    ("assert np.isfinite(again.values).all()", "asserts only that the code ran (isfinite)"),
    ("assert True", "asserts a constant"),
    ("x = 1", "asserts nothing"),
])
def test_trivial_asserts_are_caught(source, reason):
    found = trivial_asserts(source)
    assert len(found) == 1 and reason in found[0], found


@pytest.mark.parametrize("source", [
    "assert gain[2.5] > gain[17.5]",
    "assert n_real > 1.9 * n_complex and real_error > 0.1",
    "assert judged['wSDR loss'].idxmin() == judged['PESQ'].idxmax()",
    "assert (table['PESQ'] > noisy_pesq).all()",
    "assert gain > 0",
    "assert list(valid['pesq'].sort_values().index) == list(test.sort_values().index)",
    "try:\n    f()\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('accepted')",
])
def test_real_asserts_pass_the_check(source):
    assert trivial_asserts(source) == []


# --- perturbed solutions must fail -----------------------------------------------------------

# For chapter 5 (the quickest chapter to execute): per exercise, a line run just before the
# solution's first assert that replaces its key result with what a wrong solution would give.
PERTURB = {
    "05_wsdr_loss.ipynb": {
        1: 'check["metrics.si_sdr (dB)"] = check["metrics.si_sdr (dB)"] + 3; finite = check[check["rho"].abs() < 0.9999]',
        2: 'near.loc[1e-4, "|gradient|"] = near.loc[1e-1, "|gradient|"]',
        3: 'judged["PESQ"] = judged["PESQ"].to_numpy()[::-1]',
        4: 'compare = compare.iloc[::-1].set_axis(compare.index)',
    },
}


def _perturbed(source: str, line: str) -> str:
    """``source`` with ``line`` inserted before its first top-level ``assert``."""
    lines = source.splitlines()
    at = next(i for i, text in enumerate(lines) if text.startswith("assert "))
    return "\n".join([*lines[:at], line, *lines[at:]])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PERTURB))
def test_solutions_fail_when_their_result_is_wrong(name, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(BOOK / name, as_version=4)
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        head = cell.source.splitlines()[0] if cell.source else ""
        if "solution" in cell.metadata.get("tags", []):
            number = int(head.split("exercise ")[1].split(":")[0])
            wrong = _perturbed(cell.source, PERTURB[name][number])
            cells.append(nbformat.v4.new_code_cell(textwrap.dedent(f"""
                try:
                    exec({wrong!r}, globals())
                except AssertionError:
                    print("perturbed exercise {number}: failed, as it should")
                else:
                    print("perturbed exercise {number}: PASSED")
                """)))
    nb.cells = cells
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(BOOK)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.outputs if o.output_type == "stream")
    verdicts = [line for line in printed.splitlines() if line.startswith("perturbed exercise")]
    assert len(verdicts) == len(PERTURB[name]), printed[-2000:]
    assert all(v.endswith("as it should") for v in verdicts), verdicts
