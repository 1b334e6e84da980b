"""No module of ``src/torchworks`` imports itself back through others (every import statement counts, lazy ones
inside functions included: a lazy import hides a circle from Python, not from a reader)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Circles in other work areas that were open when this test landed; each is removed here once it is broken.
# A circle not listed fails the test.
KNOWN: set[frozenset[str]] = {
}


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """``{module: modules of the tree it imports}``. ``from pkg import name`` points at ``pkg.name`` when that is a
    module, else at ``pkg``; a package's parents, which Python imports implicitly, are not edges."""
    files = {_module_name(p, src): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    found.add(sub if sub in files else module)
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_import_circles_in_src():
    new = [sorted(c) for c in cycles(import_graph()) if c not in KNOWN]
    assert new == [], f"modules importing each other in a circle: {new}"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_finds_a_circle_closed_by_a_lazy_import(tmp_path):
    src = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.b import f\n",
                           "pkg/b.py": "def f():\n    from pkg import a\n", "pkg/c.py": "import pkg.a\n"})
    assert cycles(import_graph(src)) == [frozenset({"pkg.a", "pkg.b"})]


def test_relative_imports_and_package_facades(tmp_path):
    # pkg/sub/__init__ re-exports from its module; the module importing a sibling through ``..`` is no circle,
    # but importing the facade that re-exports it is one.
    src = _tree(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "from .mod import x\n",
                           "pkg/sub/mod.py": "from ..other import y\nx = 1\n", "pkg/other.py": "y = 2\n"})
    assert cycles(import_graph(src)) == []
    (src / "pkg/other.py").write_text("from pkg.sub import x\ny = 2\n")
    assert cycles(import_graph(src)) == [frozenset({"pkg.sub", "pkg.sub.mod", "pkg.other"})]
