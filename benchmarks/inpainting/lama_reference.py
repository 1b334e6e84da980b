"""Imports advimman/lama's generator from a temporary copy, for timing and parity checks only (never vendored).

The reference is not installable (its pinned 2021 dependencies do not resolve on current Python), so its
``saicinpainting/training/modules`` package, ``saicinpainting/utils.py`` and the two package ``__init__`` files are
copied, unchanged, into a :class:`tempfile.TemporaryDirectory` and imported from there. The source is either a
checkout (the directory holding ``saicinpainting``, as ``TORCHWORKS_LAMA_REF`` in
``tests/inpainting/test_nets_reference.py``) or a bare git mirror (``git show HEAD:<path>``), such as the one the
session's ``fetch github:advimman/lama`` leaves under ``/work/.mirror``. As in that test, kornia and
pytorch_lightning are stubbed while importing when they are missing: the generator uses neither on LaMa's code path.

Usage::

    with reference_generator_class() as Reference:
        ref = Reference(4, 3, ngf=64, n_downsampling=3, n_blocks=9, ...)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MIRROR = Path("/work/.mirror/advimman+lama/repo")
PACKAGE = "saicinpainting"
FILES = ("saicinpainting/__init__.py", "saicinpainting/utils.py", "saicinpainting/training/__init__.py")
MODULES_DIR = "saicinpainting/training/modules"
STUBS = ("kornia", "kornia.geometry", "kornia.geometry.transform", "kornia.constants", "kornia.augmentation",
         "pytorch_lightning")


def find_source(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The reference source: ``explicit``, else ``$TORCHWORKS_LAMA_REF``, else the session mirror; None if absent."""
    for cand in (explicit, os.environ.get("TORCHWORKS_LAMA_REF"), MIRROR):
        if cand and Path(cand).exists():
            return Path(cand)
    return None


def _is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def source_commit(source: Path) -> str:
    """The commit of a bare mirror (``git rev-parse HEAD``), or ``"checkout"`` for a plain directory."""
    if not _is_git_dir(source):
        return "checkout"
    out = subprocess.run(["git", "--git-dir", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def copy_reference(source: Path, dest: Path) -> None:
    """Copies the generator's modules from a checkout or a bare git mirror into ``dest`` (which becomes importable)."""
    if _is_git_dir(source):
        git = ["git", "--git-dir", str(source)]
        listed = subprocess.run([*git, "ls-tree", "-r", "--name-only", "HEAD", MODULES_DIR], capture_output=True,
                                text=True, check=True).stdout.split()
        for rel in (*FILES, *listed):
            blob = subprocess.run([*git, "show", f"HEAD:{rel}"], capture_output=True, check=True).stdout
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(blob)
        return
    if not (source / PACKAGE).is_dir():
        raise FileNotFoundError(f"{source} holds no {PACKAGE}/ directory (expected a checkout of advimman/lama)")
    for rel in FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, dest / rel)
    shutil.copytree(source / MODULES_DIR, dest / MODULES_DIR, dirs_exist_ok=True)


@contextlib.contextmanager
def reference_generator_class(source: str | os.PathLike[str] | None = None) -> Iterator[Any]:
    """Yields the reference ``FFCResNetGenerator`` class, imported from a temporary copy that is deleted on exit.

    Raises:
        FileNotFoundError: no reference source was found.
    """
    src = find_source(source)
    if src is None:
        raise FileNotFoundError("no advimman/lama source: pass a checkout or mirror, or set TORCHWORKS_LAMA_REF")
    saved = {k: v for k, v in sys.modules.items() if k == PACKAGE or k.startswith(PACKAGE + ".") or k in STUBS}
    with tempfile.TemporaryDirectory(prefix="lama_ref_") as tmp:
        copy_reference(src, Path(tmp))
        added_stubs = []
        for name in STUBS:
            if name not in sys.modules:
                try:
                    __import__(name)
                except ImportError:
                    sys.modules[name] = types.ModuleType(name)
                    added_stubs.append(name)
        for name, attr in (("kornia.geometry.transform", "rotate"), ("pytorch_lightning", "seed_everything"),
                           ("kornia.constants", "SamplePadding"), ("kornia.augmentation", "RandomAffine"),
                           ("kornia.augmentation", "CenterCrop")):
            if name in added_stubs:
                setattr(sys.modules[name], attr, None)
        sys.path.insert(0, tmp)
        try:
            from saicinpainting.training.modules.ffc import FFCResNetGenerator

            yield FFCResNetGenerator
        finally:
            sys.path.remove(tmp)
            for name in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
                del sys.modules[name]
            for name in added_stubs:
                sys.modules.pop(name, None)
            sys.modules.update(saved)


def build_reference(cls: Any, ngf: int, n_downsampling: int, n_blocks: int, ratio: float = 0.75,
                    enable_lfu: bool = False) -> Any:
    """A reference generator configured like our ``FFCResNetGenerator`` (LaMa's ``ffc_resnet_075`` layout)."""
    local = dict(ratio_gin=0, ratio_gout=0, enable_lfu=False)
    return cls(4, 3, ngf=ngf, n_downsampling=n_downsampling, n_blocks=n_blocks, add_out_act="sigmoid",
               init_conv_kwargs=local, downsample_conv_kwargs=local,
               resnet_conv_kwargs=dict(ratio_gin=ratio, ratio_gout=ratio, enable_lfu=enable_lfu))
