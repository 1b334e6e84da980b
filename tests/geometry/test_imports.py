"""The geometry package has no import circles (issue 22): module-level and function-level imports both count."""

from __future__ import annotations

import ast
from pathlib import Path

import torchworks.geometry

PKG = Path(torchworks.geometry.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        # A package's __init__ re-exports its modules; importing a module does not import its siblings' users.
        graph[name] = deps
    return graph


def test_no_import_cycles_between_geometry_modules():
    graph = _graph()
    assert "torchworks.geometry.distortion" in graph and len(graph) > 20
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph[node]):
            if dep.endswith("__init__") or graph.get(dep) is None:
                continue
            if state.get(dep) == 1 and not _is_package_reexport(node, dep):
                cycles.append(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def _is_package_reexport(node: str, dep: str) -> bool:
    # A module inside a package importing its own package's __init__ (or the reverse) is not a circle we mind.
    return node.startswith(dep + ".") or dep.startswith(node + ".")


def test_camera_still_exports_the_intrinsics_helpers():
    from torchworks.geometry import camera, intrinsics

    for name in ("intrinsics_matrix", "intrinsics_params", "normalized_to_pixels", "pixels_to_normalized"):
        assert getattr(camera, name) is getattr(intrinsics, name)
