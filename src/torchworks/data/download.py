"""Checksummed, resumable, atomic downloads and safe archive extraction (stdlib only).

A download streams into ``<target>.part`` while hashing, resumes an existing ``.part`` with an HTTP Range
request when the server answers 206 (otherwise it restarts from byte 0), and moves the file to ``target`` with
``os.replace`` only after the size and sha256 check out. So ``target`` either does not exist or is complete.

Nothing here runs at import: the network is touched only by an explicit :func:`download_file` call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torchworks.core.errors import DataError

__all__ = ["download_file", "extract_archive", "git_blob_id", "sha256_file"]

log = logging.getLogger(__name__)

_USER_AGENT = "torchworks-data/0.1 (python urllib)"
_CHUNK = 1 << 16


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large files do not load into memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def git_blob_id(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """The id git gives a file's content: hex SHA-1 of ``b"blob <size>\\0"`` followed by the bytes
    (``git hash-object FILE``)."""
    h = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def download_file(
    urls: str | Iterable[str],
    target: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    size: int | None = None,
    progress: bool | None = None,
    timeout: float = 60.0,
    git_blob: str | None = None,
) -> Path:
    """Downloads one file to ``target``, verifying it, trying each URL in turn.

    Args:
        urls: a URL or several URLs serving the same bytes (primary first, then mirrors).
        target: final path; parent folders are created.
        sha256: expected hex digest; ``None`` downloads unverified (logged as a warning).
        size: expected size in bytes, when known.
        progress: show a tqdm bar; ``None`` shows one when tqdm is installed and stderr is a terminal.
        timeout: seconds to wait for the server before giving up on a URL.
        git_blob: expected git blob id (:func:`git_blob_id`), checked after ``sha256``; for files known only by
            the id a pinned git tree lists.

    Returns:
        ``target`` as a Path.

    Raises:
        DataError: every URL failed (HTTP error, unreachable host, truncated response, size or checksum
            mismatch); the message names each URL and what went wrong. After a checksum or size mismatch the
            ``.part`` file is deleted; after a truncated or interrupted transfer it is kept so the next call
            resumes it.
    """
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    if not urls:
        raise ValueError("download_file needs at least one URL")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    if sha256 is None and git_blob is None:
        log.warning("no sha256 known for %s: the download cannot be verified", target.name)
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the whole file: not a prefix of it
    errors: list[str] = []
    for url in urls:
        for attempt in range(2):
            try:
                digest, nbytes, resumed = _stream(url, part, sha256, progress, timeout)
            except DataError as exc:
                errors.append(str(exc))
                break
            problem = None
            if size is not None and nbytes != size:
                problem = f"size mismatch for {url}: expected {size} bytes, got {nbytes}"
            elif sha256 is not None and digest != sha256:
                problem = f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}"
            elif git_blob is not None and (got := git_blob_id(part)) != git_blob:
                problem = f"checksum mismatch for {url}: expected git blob {git_blob}, got {got}"
            if problem is None:
                os.replace(part, target)
                return target
            part.unlink(missing_ok=True)
            if resumed and attempt == 0:
                continue  # the kept .part may have come from another version of the file: retry from byte 0
            errors.append(f"{problem}; deleted {part.name}")
            break
    if len(errors) == 1:
        raise DataError(errors[0])
    raise DataError(f"could not download {target.name}; every source failed:\n  " + "\n  ".join(errors))


def _stream(
    url: str, part: Path, sha256: str | None, progress: bool | None, timeout: float
) -> tuple[str, int, bool]:
    """Appends the rest of ``url`` to ``part`` (or rewrites it).

    Returns:
        (sha256 of the whole part file, its size, whether an existing part was resumed).
    """
    # Imported here, not at module top, so `import torchworks.data` stays cheap for the CLI.
    import http.client
    import urllib.error
    import urllib.request

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # The server has no bytes past our .part: it is either already complete or not from this file.
            if sha256 is not None and sha256_file(part) == sha256:
                return sha256, offset, True
            part.unlink()
            return _stream(url, part, sha256, progress, timeout)
        raise DataError(f"HTTP {exc.code} {exc.reason} while downloading {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url}: {reason}") from None

    with resp:
        resumed = offset > 0 and resp.status == 206 and _range_start(resp.headers.get("Content-Range")) == offset
        hasher = hashlib.sha256()
        if resumed:
            with open(part, "rb") as fh:
                while block := fh.read(1 << 20):
                    hasher.update(block)
        else:
            offset = 0  # the server ignored the Range header (200): start over from byte 0
        length = resp.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        received = 0
        bar = _progress_bar(progress, None if expected is None else offset + expected, offset, part.name)
        try:
            with open(part, "ab" if resumed else "wb") as fh:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except http.client.IncompleteRead as exc:
                        chunk = exc.partial
                        fh.write(chunk)
                        hasher.update(chunk)
                        received += len(chunk)
                        break
                    except (OSError, http.client.HTTPException) as exc:
                        raise DataError(
                            f"connection lost while downloading {url} after {offset + received} bytes ({exc}); "
                            f"run again to resume from {part}"
                        ) from None
                    if not chunk:
                        break
                    fh.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            bar.close()
    if expected is not None and received < expected:
        raise DataError(
            f"truncated download from {url}: got {offset + received} of {offset + expected} bytes; "
            f"kept {part} so the next run resumes"
        )
    return hasher.hexdigest(), offset + received, resumed


def _range_start(content_range: str | None) -> int | None:
    """First byte position of a ``Content-Range: bytes START-END/TOTAL`` header, or None."""
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)", content_range or "")
    return int(m.group(1)) if m else None


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool | None, total: int | None, initial: int, desc: str) -> Any:
    if enabled is None:
        enabled = sys.stderr is not None and sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Unpacks ``.tar.gz``/``.tgz``/``.tar``/``.tar.xz``/``.tar.bz2``, ``.zip`` or a single-file ``.gz``.

    The archive is unpacked into a temporary folder inside ``dest`` first and its top-level entries are then
    moved into place, so an interrupted extraction never leaves a half-written tree at the final paths.
    Members that would land outside ``dest`` (absolute paths, ``..``, links pointing out) are refused.

    Returns:
        The top-level paths created in ``dest``.

    Raises:
        DataError: unknown archive type, a corrupt archive, or an unsafe member.
    """
    import shutil
    import tempfile

    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.xz", ".tar.bz2")):
            _extract_tar(archive, tmp)
        elif name.endswith(".zip"):
            _extract_zip(archive, tmp)
        elif name.endswith(".gz"):
            _gunzip(archive, tmp / archive.name[: -len(".gz")])
        else:
            raise DataError(f"do not know how to extract {archive} (not .tar.gz, .tgz, .tar, .zip or .gz)")
        created = []
        for entry in sorted(tmp.iterdir()):
            final = dest / entry.name
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)  # a stale tree from an earlier, older extraction
            os.replace(entry, final)
            created.append(final)
        return created
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_tar(archive: Path, out: Path) -> None:
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            # The "data" filter (Python >= 3.11.4) refuses absolute paths, "..", links out of the tree and
            # device files; it also drops permissions we would not want from a downloaded archive.
            tar.extractall(out, filter="data")
    except tarfile.FilterError as exc:
        raise DataError(f"refusing to extract {archive}: unsafe member ({exc})") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"corrupt archive {archive}: {exc}") from None


def _extract_zip(archive: Path, out: Path) -> None:
    import zipfile

    root = out.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = (root / info.filename).resolve()
                if not target.is_relative_to(root):
                    raise DataError(f"refusing to extract {archive}: member {info.filename!r} escapes the folder")
            zf.extractall(out)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"corrupt archive {archive}: {exc}") from None


def _gunzip(archive: Path, out: Path) -> None:
    import gzip
    import shutil
    import zlib

    try:
        with gzip.open(archive, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"corrupt gzip file {archive}: {exc}") from None
