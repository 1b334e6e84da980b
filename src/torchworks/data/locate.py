"""Finding a data set on this machine, downloading it on request, and verifying a local copy.

Search order (the first folder holding every file of one of the spec's layouts wins):

1. ``data_dir`` (the CLI's ``--data-dir``): ``DIR/<folder>``, ``DIR/<name>``, then ``DIR`` itself;
2. ``$TORCHWORKS_DATA`` (one or more roots separated by ``os.pathsep``): ``ROOT/<folder>``, ``ROOT/<name>``;
3. the shared data folder: ``A/shared/data/<folder>`` for every ancestor ``A`` of the current directory and of
   this package's source (so a checkout at ``/work/main`` finds ``/work/shared/data``, and a CI clone at
   ``$d/p`` finds ``$d/shared/data``);
4. the spec's ``system_paths`` (folders an OS package installs into);
5. the cache, ``$TORCHWORKS_CACHE/<name>`` (default ``$XDG_CACHE_HOME/torchworks/data`` or
   ``~/.cache/torchworks/data``): the only place a download goes unless ``data_dir`` is given.

Nothing is downloaded unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

from torchworks.core.errors import DataError, DataNotFoundError
from torchworks.core.registry import DATASETS
from torchworks.data.download import download_file, extract_archive, git_blob_id, sha256_file
from torchworks.data.spec import DatasetSpec

__all__ = [
    "ENV_CACHE", "ENV_DATA", "FileCheck", "Location", "cache_dir", "candidate_locations", "dataset_path",
    "fetch", "find_dataset", "get_spec", "list_datasets", "resolve", "shared_data_dirs", "verify",
]

log = logging.getLogger(__name__)

ENV_DATA = "TORCHWORKS_DATA"
ENV_CACHE = "TORCHWORKS_CACHE"


class Location(NamedTuple):
    """A folder searched for a data set and why it was searched (``"--data-dir"``, ``"shared"``, ...)."""

    source: str
    path: Path


class FileCheck(NamedTuple):
    """One row of :func:`verify`: the file, whether it is good, and what was checked."""

    path: Path
    ok: bool
    detail: str


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The registered spec called ``name`` (a spec passes through unchanged).

    Raises:
        UnknownNameError: no such data set; the message suggests close names.
    """
    return name if isinstance(name, DatasetSpec) else DATASETS.get(name)


def list_datasets() -> list[DatasetSpec]:
    """Every registered data set, sorted by name."""
    return [DATASETS.get(n) for n in DATASETS.names()]


def cache_dir() -> Path:
    """Folder that receives downloads: ``$TORCHWORKS_CACHE``, else ``~/.cache/torchworks/data``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "torchworks" / "data"


def shared_data_dirs() -> list[Path]:
    """Every existing ``shared/data`` folder next to an ancestor of the cwd or of this package, nearest first."""
    starts = [Path(__file__).resolve().parent]
    try:
        starts.insert(0, Path.cwd())
    except OSError:  # the working directory was deleted under us
        pass
    found: list[Path] = []
    for start in starts:
        for anc in (start, *start.parents):
            cand = anc / "shared" / "data"
            if cand.is_dir() and cand not in found:
                found.append(cand)
    return found


def candidate_locations(name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> list[Location]:
    """Folders searched for a data set, in priority order (see the module docstring)."""
    spec = get_spec(name)
    locs: list[Location] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        locs += [Location("--data-dir", d / spec.folder), Location("--data-dir", d / spec.name),
                 Location("--data-dir", d)]
    for root in filter(None, os.environ.get(ENV_DATA, "").split(os.pathsep)):
        r = Path(root).expanduser()
        locs += [Location(f"${ENV_DATA}", r / spec.folder), Location(f"${ENV_DATA}", r / spec.name)]
    locs += [Location("shared", d / spec.folder) for d in shared_data_dirs()]
    locs += [Location("system", Path(p)) for p in spec.system_paths]
    locs.append(Location("cache", cache_dir() / spec.name))
    unique: list[Location] = []
    for loc in locs:
        if all(loc.path != u.path for u in unique):
            unique.append(loc)
    return unique


def _complete_layout(spec: DatasetSpec, folder: Path) -> tuple[str, ...] | None:
    """The first layout whose files all exist in ``folder``, or None."""
    if not folder.is_dir():
        return None
    for layout in spec.layouts:
        if all((folder / p).exists() for p in layout):
            return layout
    return None


def find_dataset(name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> Location | None:
    """The first searched folder holding a complete copy, or None (never raises for a missing copy).

    Meant for listings (``torchworks data list`` showing where each data set was found).
    """
    spec = get_spec(name)
    for loc in candidate_locations(spec, data_dir):
        if _complete_layout(spec, loc.path) is not None:
            return loc
    return None


def resolve(
    name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None, download: bool = False
) -> Path:
    """Folder holding a complete copy of a data set.

    Args:
        name: registered name (``"fashion_mnist"``) or a spec.
        data_dir: searched first (``--data-dir``); also where a download goes when given.
        download: when no copy is found, download the public origin (verifying every sha256) into
            ``data_dir/<name>`` or the cache. Never happens implicitly.

    Raises:
        UnknownNameError: no such data set.
        DataNotFoundError: no copy found and ``download`` is False; the message lists every place searched
            and how to fix it.
        DataError: the download failed.
    """
    spec = get_spec(name)
    if data_dir is not None and not download and not Path(data_dir).expanduser().is_dir():
        # An explicit directory that does not exist is a typo, not a reason to fall back silently.
        raise DataNotFoundError(
            f"data directory {str(data_dir)!r} does not exist; fix the path given as --data-dir (or drop it to "
            f"search $TORCHWORKS_DATA, ../shared/data and the cache for {spec.name!r})")
    found = find_dataset(spec, data_dir)
    if found is not None:
        return found.path
    if download:
        dest = (Path(data_dir).expanduser() / spec.name) if data_dir is not None else cache_dir() / spec.name
        return fetch(spec, dest)
    raise DataNotFoundError(_not_found_message(spec, candidate_locations(spec, data_dir), data_dir))


dataset_path = resolve  # the name the CLI uses: `torchworks data path NAME [--download]`


def _not_found_message(spec: DatasetSpec, locs: list[Location], data_dir: object) -> str:
    lines = [f"data set {spec.name!r} was not found. Searched, in order:"]
    if data_dir is None:
        lines.append("  --data-dir: not given")
    if not os.environ.get(ENV_DATA):
        lines.append(f"  ${ENV_DATA}: not set")
    if not any(loc.source == "shared" for loc in locs):
        lines.append("  shared: no shared/data folder above the working directory or the package")
    for loc in locs:
        if not loc.path.is_dir():
            state = "does not exist"
        else:
            missing = [p for p in spec.expected if not (loc.path / p).exists()]
            more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
            state = f"incomplete, missing {missing[0]}{more}"
        lines.append(f"  {loc.source}: {loc.path} ({state})")
    size = spec.download_size
    what = f"{len(spec.files)} file(s)" + (f", {size / 1e6:.1f} MB" if size else "")
    lines += [
        "Fix it with one of:",
        f"  torchworks data path {spec.name} --download   ({what} from {spec.files[0].url.split('/')[2]})"
        if spec.files else f"  (no public download known; see {spec.homepage})",
        f"  export {ENV_DATA}=DIR   with the files in DIR/{spec.folder}/",
        f"  --data-dir DIR   with the files in DIR/{spec.folder}/",
    ]
    return "\n".join(lines)


def fetch(name: str | DatasetSpec, dest: str | os.PathLike[str], progress: bool | None = None) -> Path:
    """Downloads every file of a data set's public origin into ``dest`` and checks the result.

    Files already present with a matching sha256 are skipped; archives are extracted and then deleted.

    Returns:
        ``dest`` as a Path.

    Raises:
        DataError: a download failed, or the downloaded files do not form a complete copy.
    """
    spec = get_spec(name)
    dest = Path(dest)
    if not spec.files:
        raise DataError(f"no public download is known for {spec.name!r}; see {spec.homepage}")
    log.info("downloading %s (%d files) into %s", spec.name, len(spec.files), dest)
    created = not dest.exists()
    try:
        for f in spec.files:
            target = dest / f.path
            if not f.extract and target.is_file() and _matches(spec, f.path, target):
                continue
            download_file(f.urls, target, f.sha256, size=f.size, progress=progress, git_blob=f.git_blob)
            if f.extract:
                extract_archive(target, target.parent)
                target.unlink()  # the unpacked files are what the data set is; keeping both doubles the disk use
    except DataError:
        # Leave no empty folders behind an unreachable host (a .part kept for resuming stays).
        if created and dest.is_dir():
            for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True) + [dest]:
                if not any(folder.iterdir()):
                    folder.rmdir()
        raise
    if _complete_layout(spec, dest) is None:
        missing = [p for p in spec.expected if not (dest / p).exists()]
        raise DataError(f"downloaded {spec.name!r} into {dest} but these expected files are missing: {missing}")
    bad = [c for c in _check(spec, dest, spec.expected) if not c.ok]
    if bad:
        raise DataError(f"downloaded {spec.name!r} but {bad[0].path} failed its check: {bad[0].detail}")
    return dest


def verify(name: str | DatasetSpec, data_dir: str | os.PathLike[str] | None = None) -> list[FileCheck]:
    """Checks the copy :func:`resolve` would use: expected files exist and known sha256 digests match.

    When no complete copy exists, the first folder that exists among the searched ones is checked instead,
    so the rows show what is missing there.

    Returns:
        One :class:`FileCheck` per expected file, then one per other file present with a known digest.

    Raises:
        DataNotFoundError: none of the searched folders exists.
    """
    spec = get_spec(name)
    locs = candidate_locations(spec, data_dir)
    for loc in locs:
        layout = _complete_layout(spec, loc.path)
        if layout is not None:
            return _check(spec, loc.path, layout)
    for loc in locs:
        if loc.path.is_dir():
            return _check(spec, loc.path, spec.expected)
    raise DataNotFoundError(_not_found_message(spec, locs, data_dir))


def _matches(spec: DatasetSpec, rel: str, path: Path) -> bool:
    """Whether the file at ``path`` is a good copy of ``rel`` by every digest the spec knows for it."""
    accepted, blob = spec.accepted_sha256(rel), spec.git_blob(rel)
    return (not accepted or sha256_file(path) in accepted) and (blob is None or git_blob_id(path) == blob)


def _check(spec: DatasetSpec, folder: Path, layout: tuple[str, ...]) -> list[FileCheck]:
    rows: list[FileCheck] = []
    extra = [p for p in spec.checksummed_paths() if p not in layout and (folder / p).is_file()]
    for rel in (*layout, *extra):
        path = folder / rel
        if not path.exists():
            rows.append(FileCheck(path, False, "missing"))
            continue
        accepted, blob = spec.accepted_sha256(rel), spec.git_blob(rel)
        if not path.is_file() or (not accepted and blob is None):
            rows.append(FileCheck(path, True, "present (no checksum known)"))
        elif accepted:
            got = sha256_file(path)
            ok = got in accepted
            rows.append(FileCheck(path, ok, "sha256 ok" if ok else
                                  f"sha256 mismatch: expected {' or '.join(sorted(accepted))}, got {got}"))
        else:
            got = git_blob_id(path)
            rows.append(FileCheck(path, got == blob, "git blob ok" if got == blob else
                                  f"git blob mismatch: expected {blob}, got {got}"))
    return rows
