"""The catalog reaches every module that registers anything, and registries resolve names through it alone."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from torchworks import catalog
from torchworks.core.registry import REGISTRIES

SRC = Path(__file__).resolve().parents[2] / "src" / "torchworks"
# the variable names of the shared instances in torchworks.core.registry -> their catalog key
INSTANCES = {"MODELS": "models", "LOSSES": "losses", "DISTILL_LOSSES": "distill_losses", "MASKS": "masks",
             "DATASETS": "datasets", "TASKS": "tasks", "INPAINTERS": "inpainters"}


def registering_modules(src: Path = SRC) -> dict[str, set[str]]:
    """``{module: {catalog keys}}`` for every module calling ``<REGISTRY>.register(``/``.add(`` (decorators too).

    A registry imported under another name (``from torchworks.core.registry import MODELS as M``) is followed.
    """
    found: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.py")):
        if path == src / "core" / "registry.py":
            continue
        module = ".".join(path.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        alias = {a.asname or a.name: INSTANCES[a.name] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module == "torchworks.core.registry"
                 for a in node.names if a.name in INSTANCES}
        for node in ast.walk(tree):
            f = node.func if isinstance(node, ast.Call) else None
            if (isinstance(f, ast.Attribute) and f.attr in ("register", "add") and isinstance(f.value, ast.Name)
                    and f.value.id in alias):
                found.setdefault(module, set()).add(alias[f.value.id])
    return found


_REACH = """
import importlib, json, os, sys
import torch  # imported once before forking: each child then imports only torchworks modules
results = {}
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        importlib.import_module(name)
        with os.fdopen(write, "w") as fh:
            fh.write(json.dumps(sorted(k for k in sys.modules if k.startswith("torchworks"))))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        text = fh.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not text:
        raise SystemExit(f"importing {name} failed")
    results[name] = json.loads(text)
print(json.dumps(results))
"""


def reached_by_each(modules) -> dict[str, set[str]]:
    """``{module: torchworks modules a fresh interpreter holds after importing it}`` (one forked child each)."""
    out = subprocess.run([sys.executable, "-c", _REACH, json.dumps(sorted(set(modules)))], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return {k: set(v) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}


def test_the_scan_sees_known_registrations():
    # guards the scanner itself: decorators, plain .add() calls and each kind are recognised
    found = registering_modules()
    assert found["torchworks.distill.losses.kd"] == {"distill_losses"}
    assert found["torchworks.data.catalog"] == {"datasets"}
    assert found["torchworks.inpainting.task"] == {"tasks"}
    assert {k for kinds in found.values() for k in kinds} == set(INSTANCES.values()) - {"losses"}


def test_catalog_keys_are_the_registries():
    assert set(catalog.PROVIDERS) == set(REGISTRIES) == set(INSTANCES.values())
    assert all(REGISTRIES[k].catalog_key == k for k in REGISTRIES)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="the reachability probe forks (POSIX)")
def test_catalog_reaches_every_registering_module_through_its_own_kind():
    found = registering_modules()
    reach = reached_by_each(catalog.PLUGIN_MODULES)
    for kind, modules in catalog.PROVIDERS.items():
        wanted = {m for m, kinds in found.items() if kind in kinds}
        reached = set().union(*(reach[m] for m in modules))
        assert wanted <= reached, f"catalog.PROVIDERS[{kind!r}] misses {sorted(wanted - reached)}"
        for module in modules:  # and lists nothing that registers none of this kind
            assert wanted & reach[module], f"PROVIDERS[{kind!r}] lists {module}, which registers no {kind}"


def test_fresh_interpreter_resolves_names_without_importing_their_modules():
    code = """
import sys
from torchworks.core.registry import DISTILL_LOSSES, MODELS, TASKS
before = [m for m in ("torchworks.distill", "torchworks.transformer") if m in sys.modules]
net = MODELS.build("resnet20", num_classes=7)
print(before, sum(p.numel() for p in net.parameters()), net.fc.out_features)
print("kd" in DISTILL_LOSSES, len(DISTILL_LOSSES), TASKS.get("image_classifier").__module__)
print("torchworks.inpainting" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "[] 272279 7"  # CIFAR resnet20: 272,474 parameters with 10 classes, 3 x 65 fewer with 7
    assert lines[1].startswith("True 16 torchworks.classify.task")  # the shared image-classification task
    assert lines[2] == "False"  # the lookups stopped at the module that had the name
