"""distill may import core, nn, data, torch and the stdlib only (engine is not ready; other domains never)."""

import ast
from pathlib import Path

import torchworks.distill

FORBIDDEN = ("torchworks.inpainting", "torchworks.sequence", "torchworks.transformer", "torchworks.engine",
             "torchworks.cli", "torchworks.ui", "torchvision")


def test_distill_imports_stay_in_their_layer():
    root = Path(torchworks.distill.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert not offenders
    assert len(list(root.rglob("*.py"))) >= 20  # the walk really saw the package
