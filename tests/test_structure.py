"""The house's rules, checked: no import circles inside `clippings/` (lazy imports inside functions count),
no upward import from the archive reader and preprocessing into the stages they serve (`BELOW`),
no docstring or comment that points to a file outside the project or to a temporary-folder path, and every
pointer into `docs/` (a page, a #section) names one that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.test_docs import _anchors

PACKAGE = Path(__file__).resolve().parent.parent / "clippings"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every clippings module that `name` imports anywhere in its file (top level or inside a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)  # a package's own __init__ above it is not a circle of modules
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_lazy_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_inside_the_package():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles (lazy imports included): " + "; ".join(" <-> ".join(c) for c in cycles)


BELOW = {
    "clippings.reader": ("clippings.preprocess", "clippings.model", "clippings.embed", "clippings.train"),
    "clippings.preprocess": ("clippings.embed", "clippings.train"),
    "clippings.train": ("clippings.embed",),
}
"""Rooms and the rooms above them that they must not import: the archive reader and preprocessing serve
embedding and training alike, so neither of those is a door into the other."""


def _within(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def test_reading_sits_below_embedding_and_training():
    upward = sorted(f"{name} imports {target}" for name, targets in import_graph().items() for target in targets
                    for room, above in BELOW.items()
                    if _within(name, room) and any(_within(target, a) for a in above))
    assert not upward, "upward imports:\n" + "\n".join(upward)


OUTSIDE_REFERENCE = re.compile(r"design\.md|/tmp/|/work/|\bshared/")


def test_no_reference_outside_the_project_in_docstrings_or_comments():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if OUTSIDE_REFERENCE.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not found, "point to docs/ in the project instead:\n" + "\n".join(found)


DOCS_POINTER = re.compile(r"\bdocs/([\w-]+\.md)(?:#([\w-]+))?|(?<=[\s(,])#([a-z][a-z0-9-]*)")
"""`docs/page.md`, `docs/page.md#section`, and a bare `#section` after one on the same line (its page)."""


def _docs_pointers(line: str) -> list[tuple[str, str | None]]:
    """(page, section or None) of each pointer into docs/ on a line."""
    found, page = [], None
    for match in DOCS_POINTER.finditer(line):
        if match.group(1):
            page = match.group(1)
            found.append((page, match.group(2)))
        elif page:
            found.append((page, match.group(3)))
    return found


def test_docs_pointer_reader():
    line = "(see docs/architecture.md#data-contract and #reliability); x = 1  # a comment, docs/models.md"
    assert _docs_pointers(line) == [("architecture.md", "data-contract"), ("architecture.md", "reliability"),
                                    ("models.md", None)]
    assert _docs_pointers("x = 1  # no pointer #here") == []


def test_pointers_into_docs_resolve():
    docs = PACKAGE.parent / "docs"
    sources = [*sorted(PACKAGE.rglob("*.py")), PACKAGE.parent / "pyproject.toml"]
    broken, pointers = [], 0
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for page, section in _docs_pointers(line):
                pointers += 1
                if not (docs / page).is_file() or (section and section not in _anchors(docs / page)):
                    broken.append(f"{path.relative_to(PACKAGE.parent)}:{number}: docs/{page}" +
                                  (f"#{section}" if section else ""))
    assert pointers, "no pointer into docs/ found: the reader above has stopped matching"
    assert not broken, "no such docs page or section:\n" + "\n".join(broken)
