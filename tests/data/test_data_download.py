"""download_file / extract_archive against a real local HTTP server (no internet)."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from torchworks.core.errors import DataError
from torchworks.data import download_file, extract_archive, sha256_file
from torchworks.data.download import git_blob_id

PAYLOAD = bytes((i * 7 + i // 251) % 256 for i in range(200_000))  # not periodic in 2**16, so offsets matter
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _part(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def test_good_file_downloads_and_verifies(http_server, tmp_path):
    url = http_server.add("/good.bin", PAYLOAD)
    target = tmp_path / "sub" / "good.bin"
    out = download_file(url, target, PAYLOAD_SHA, size=len(PAYLOAD), progress=False)
    assert out == target
    assert target.read_bytes() == PAYLOAD
    assert sha256_file(target) == PAYLOAD_SHA
    assert not _part(target).exists()
    assert http_server.requests == [("/good.bin", None, 200)]


def test_git_blob_id_is_what_git_hash_object_prints(tmp_path):
    (tmp_path / "hello").write_bytes(b"hello\n")
    (tmp_path / "empty").write_bytes(b"")
    assert git_blob_id(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    assert git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_download_verified_by_git_blob(http_server, tmp_path):
    url = http_server.add("/train.txt", PAYLOAD)
    (tmp_path / "ref").write_bytes(PAYLOAD)
    blob = git_blob_id(tmp_path / "ref")
    target = tmp_path / "train.txt"
    assert download_file(url, target, None, git_blob=blob, progress=False).read_bytes() == PAYLOAD
    other = tmp_path / "other.txt"
    http_server.add("/train.txt", PAYLOAD[:-1] + b"!")  # one byte changed
    with pytest.raises(DataError, match=f"checksum mismatch for {url}: expected git blob {blob}, got "):
        download_file(url, other, None, git_blob=blob, progress=False)
    assert not other.exists() and not _part(other).exists()


def test_wrong_checksum_leaves_no_file(http_server, tmp_path):
    url = http_server.add("/good.bin", PAYLOAD)
    target = tmp_path / "good.bin"
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        download_file(url, target, wrong, progress=False)
    msg = str(info.value)
    assert url in msg and wrong in msg and PAYLOAD_SHA in msg
    assert not target.exists() and not _part(target).exists()


def test_truncated_response_raises_then_resumes(http_server, tmp_path):
    url = http_server.add("/cut.bin", PAYLOAD, mode="truncate")
    target = tmp_path / "cut.bin"
    with pytest.raises(DataError, match="truncated") as info:
        download_file(url, target, PAYLOAD_SHA, progress=False)
    assert url in str(info.value)
    assert not target.exists()
    kept = _part(target).stat().st_size
    assert 0 < kept < len(PAYLOAD)
    http_server.add("/cut.bin", PAYLOAD)  # the server recovers
    download_file(url, target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert http_server.requests[-1] == ("/cut.bin", f"bytes={kept}-", 206)


def test_truncated_without_checksum_still_detected(http_server, tmp_path):
    url = http_server.add("/cut.bin", PAYLOAD, mode="truncate")
    with pytest.raises(DataError, match="truncated"):
        download_file(url, tmp_path / "cut.bin", None, progress=False)
    assert not (tmp_path / "cut.bin").exists()


def test_404_raises_with_url(http_server, tmp_path):
    url = http_server.url("/missing.bin")
    with pytest.raises(DataError) as info:
        download_file(url, tmp_path / "missing.bin", PAYLOAD_SHA, progress=False)
    assert url in str(info.value) and "404" in str(info.value)
    assert not (tmp_path / "missing.bin").exists()


def test_unreachable_host_raises_with_url(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DataError, match="cannot download") as info:
        download_file(url, tmp_path / "x.bin", PAYLOAD_SHA, progress=False, timeout=5)
    assert url in str(info.value)


def test_resume_existing_part_uses_range(http_server, tmp_path):
    url = http_server.add("/big.bin", PAYLOAD)
    target = tmp_path / "big.bin"
    _part(target).write_bytes(PAYLOAD[:12_345])
    download_file(url, target, PAYLOAD_SHA, size=len(PAYLOAD), progress=False)
    assert sha256_file(target) == PAYLOAD_SHA
    assert http_server.requests == [("/big.bin", "bytes=12345-", 206)]


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    url = http_server.add("/big.bin", PAYLOAD, mode="no-range")
    target = tmp_path / "big.bin"
    _part(target).write_bytes(b"garbage that must not stay in front" * 10)
    download_file(url, target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert http_server.requests == [("/big.bin", "bytes=350-", 200)]


def test_stale_part_from_another_file_is_redownloaded(http_server, tmp_path):
    url = http_server.add("/big.bin", PAYLOAD)
    target = tmp_path / "big.bin"
    _part(target).write_bytes(b"\xff" * 1000)  # a prefix of some other file: resuming gives the wrong hash
    download_file(url, target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert [r[1:] for r in http_server.requests] == [("bytes=1000-", 206), (None, 200)]


def test_complete_part_gets_416_and_is_accepted(http_server, tmp_path):
    url = http_server.add("/big.bin", PAYLOAD)
    target = tmp_path / "big.bin"
    _part(target).write_bytes(PAYLOAD)  # crashed after the last byte, before the rename
    download_file(url, target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert http_server.requests == [("/big.bin", f"bytes={len(PAYLOAD)}-", 416)]


def test_mirror_used_when_primary_fails(http_server, tmp_path):
    bad = http_server.url("/gone.bin")
    good = http_server.add("/mirror.bin", PAYLOAD)
    target = tmp_path / "f.bin"
    download_file([bad, good], target, PAYLOAD_SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    with pytest.raises(DataError) as info:  # all sources fail: each one is named
        download_file([bad, http_server.url("/gone2.bin")], tmp_path / "g.bin", PAYLOAD_SHA, progress=False)
    assert bad in str(info.value) and "/gone2.bin" in str(info.value)


def test_size_mismatch_raises_and_deletes_part(http_server, tmp_path):
    url = http_server.add("/good.bin", PAYLOAD)
    target = tmp_path / "good.bin"
    with pytest.raises(DataError, match="size mismatch"):
        download_file(url, target, None, size=len(PAYLOAD) + 1, progress=False)
    assert not target.exists() and not _part(target).exists()


def test_progress_bar_does_not_change_result(http_server, tmp_path, capsys):
    pytest.importorskip("tqdm")
    url = http_server.add("/good.bin", PAYLOAD)
    download_file(url, tmp_path / "good.bin", PAYLOAD_SHA, progress=True)
    assert sha256_file(tmp_path / "good.bin") == PAYLOAD_SHA
    assert "good.bin.part" in capsys.readouterr().err  # tqdm's description is the file being written


# --- extraction ------------------------------------------------------------------------------------------------


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_tar_gz(tmp_path):
    archive = _tar_gz(tmp_path / "a.tar.gz", {"top/x.txt": b"x", "top/sub/y.txt": b"yy"})
    created = extract_archive(archive, tmp_path / "out")
    assert created == [tmp_path / "out" / "top"]
    assert (tmp_path / "out/top/sub/y.txt").read_bytes() == b"yy"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["top"]  # no temporary folder left behind


def test_extract_zip_and_gz(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("d/z.txt", b"zip")
    extract_archive(tmp_path / "a.zip", tmp_path / "out")
    assert (tmp_path / "out/d/z.txt").read_bytes() == b"zip"
    (tmp_path / "data.bin.gz").write_bytes(gzip.compress(b"gz payload"))
    extract_archive(tmp_path / "data.bin.gz", tmp_path / "out")
    assert (tmp_path / "out/data.bin").read_bytes() == b"gz payload"


def test_extract_refuses_path_traversal(tmp_path):
    archive = _tar_gz(tmp_path / "evil.tar.gz", {"../evil.txt": b"x"})
    with pytest.raises(DataError, match="unsafe"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("../evil2.txt", b"x")
    with pytest.raises(DataError, match="escapes"):
        extract_archive(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "evil2.txt").exists()


def test_extract_corrupt_archive_raises(tmp_path):
    (tmp_path / "bad.tar.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(DataError, match="corrupt"):
        extract_archive(tmp_path / "bad.tar.gz", tmp_path / "out")
    (tmp_path / "bad.rar").write_bytes(b"?")
    with pytest.raises(DataError, match="do not know"):
        extract_archive(tmp_path / "bad.rar", tmp_path / "out")
