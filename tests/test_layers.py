"""The import direction of DESIGN.md, checked by walking every import statement (lazy ones included)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "torchworks"
BASE = {"core"}
MID = {"nn", "geometry", "data", "engine"}
# Shared by the domains, above the engine and the data: one image-classification task (classify), which the
# distillation task and the ViT family build on. It needs the data layer, which the engine may not import.
SHARED = {"classify"}
DOMAINS = {"inpainting", "distill", "sequence", "transformer"}
# Which torchworks layers each layer may import (its own layer is always allowed).
ALLOWED = {
    "core": set(),
    "nn": BASE, "data": BASE, "engine": BASE, "geometry": BASE,
    **{s: BASE | MID for s in SHARED},
    **{d: BASE | MID | SHARED for d in DOMAINS},
    "ui": BASE | {"inpainting"},
    "cli": None, "catalog": None,  # None: anything (lazily)
}
CORE_THIRD_PARTY = {"torch", "numpy", "yaml", "safetensors"}


def _layer(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "torchworks":  # from torchworks import x
                found += [(node.lineno, f"torchworks.{a.name}") for a in node.names]
    return found


def violations(src: Path = SRC) -> list[str]:
    """Every import that breaks the layer table, as 'file:line imports module'."""
    bad = []
    for path in sorted(src.rglob("*.py")):
        layer = _layer(path, src)
        if layer == "__init__":
            allowed: set[str] | None = set()
        else:
            allowed = ALLOWED.get(layer, set())
        for line, mod in _imports(path):
            parts = mod.split(".")
            if parts[0] == "torchworks":
                if len(parts) < 2 or allowed is None or parts[1] == layer or parts[1] in allowed:
                    continue
                if parts[1] == "__version__":
                    continue
                bad.append(f"{path.relative_to(src)}:{line} ({layer}) imports {mod}")
            elif layer == "core" and parts[0] not in CORE_THIRD_PARTY and parts[0] not in sys.stdlib_module_names:
                bad.append(f"{path.relative_to(src)}:{line} (core) imports third-party {mod}")
    return bad


def test_every_layer_is_known():
    layers = {_layer(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert layers <= set(ALLOWED), f"add new layers to the table in tests/test_layers.py: {layers - set(ALLOWED)}"


def test_package_respects_layer_direction():
    assert violations() == []


@pytest.mark.parametrize(("layer", "stmt"), [
    ("core", "from torchworks.engine import trainer"),
    ("geometry", "import torchworks.nn.attention"),
    ("distill", "from torchworks.inpainting import api"),
    ("engine", "def f():\n    from torchworks.data import fashion_mnist\n"),
    ("core", "import cv2"),
    ("classify", "from torchworks.distill.task import DistillationTask"),  # the shared layer sits below the domains
    ("engine", "import torchworks.classify.task"),
])
def test_checker_catches_a_bad_import(tmp_path, layer, stmt):
    pkg = tmp_path / "torchworks" / layer
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text(stmt + "\n")
    found = violations(tmp_path / "torchworks")
    assert len(found) == 1 and found[0].startswith(f"{layer}/bad.py:")


def test_checker_allows_a_good_import(tmp_path):
    pkg = tmp_path / "torchworks" / "distill"
    pkg.mkdir(parents=True)
    (pkg / "ok.py").write_text("from torchworks.engine.task import Task\nimport torchworks.core.registry\n"
                               "from torchworks.classify.task import ClassificationTask\n")
    assert violations(tmp_path / "torchworks") == []
