"""Where a data set is looked for, in which order, what happens when it is missing, and verify()."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from torchworks.core.errors import DataError, DataNotFoundError, UnknownNameError
from torchworks.data import (
    DatasetSpec,
    RemoteFile,
    candidate_locations,
    dataset_path,
    fetch,
    find_dataset,
    get_spec,
    resolve,
    shared_data_dirs,
    verify,
)

A_TXT = b"alpha\n"
B_TXT = b"bravo bravo\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(url_a: str = "http://127.0.0.1:9/a.txt", url_b: str = "http://127.0.0.1:9/b.txt", **kw) -> DatasetSpec:
    fields = dict(
        name="fake_ds",
        description="test data set",
        license="CC0",
        homepage="https://example.org",
        folder="fake_folder",
        files=(RemoteFile(url_a, _sha(A_TXT), "a.txt", size=len(A_TXT)), RemoteFile(url_b, _sha(B_TXT), "sub/b.txt")),
    )
    fields.update(kw)
    return DatasetSpec(**fields)


def _make_copy(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_bytes(A_TXT)
    (folder / "sub" / "b.txt").write_bytes(B_TXT)
    return folder


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $TORCHWORKS_DATA, a private cache, and a cwd with no shared/data above it."""
    monkeypatch.delenv("TORCHWORKS_DATA", raising=False)
    monkeypatch.setenv("TORCHWORKS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    return tmp_path


def test_resolution_order(isolated, monkeypatch):
    tmp = isolated
    spec = _spec()
    explicit = _make_copy(tmp / "explicit" / "fake_folder")
    env = _make_copy(tmp / "env" / "fake_ds")  # the registry name works as a folder name too
    shared = _make_copy(tmp / "shared" / "data" / "fake_folder")  # tmp/proj/../shared/data
    cache = _make_copy(tmp / "cache" / "fake_ds")
    monkeypatch.setenv("TORCHWORKS_DATA", str(tmp / "env"))

    assert resolve(spec, data_dir=tmp / "explicit") == explicit
    assert resolve(spec) == env
    monkeypatch.delenv("TORCHWORKS_DATA")
    assert resolve(spec) == shared
    monkeypatch.chdir(tmp)  # tmp/shared/data is still found from tmp itself (an ancestor's shared/data)
    assert resolve(spec) == shared
    monkeypatch.chdir(tmp / "cache")
    (shared / "a.txt").unlink()  # an incomplete copy does not count
    assert resolve(spec) == cache


def test_find_dataset_reports_source_without_raising(isolated, monkeypatch):
    assert find_dataset(_spec()) is None
    _make_copy(isolated / "env" / "fake_folder")
    monkeypatch.setenv("TORCHWORKS_DATA", str(isolated / "env"))
    loc = find_dataset(_spec())
    assert loc.source == "$TORCHWORKS_DATA" and loc.path == isolated / "env" / "fake_folder"


def test_data_dir_may_be_the_data_set_folder_itself(isolated):
    folder = _make_copy(isolated / "anywhere")
    assert resolve(_spec(), data_dir=folder) == folder


def test_env_accepts_several_roots(isolated, monkeypatch):
    second = _make_copy(isolated / "r2" / "fake_folder")
    monkeypatch.setenv("TORCHWORKS_DATA", f"{isolated / 'r1'}:{isolated / 'r2'}")
    assert resolve(_spec()) == second


def test_system_path_comes_after_shared_and_before_cache(isolated):
    system = _make_copy(isolated / "usr_share")
    cache = _make_copy(isolated / "cache" / "fake_ds")
    spec = _spec(system_paths=(str(system),))
    assert resolve(spec) == system
    shared = _make_copy(isolated / "shared" / "data" / "fake_folder")
    assert resolve(spec) == shared
    assert [loc.source for loc in candidate_locations(spec)][-2:] == ["system", "cache"]
    assert candidate_locations(spec)[-1].path == cache


def test_alt_layout_counts(isolated):
    spec = _spec(alt_layouts=(("derived.npz",),))
    folder = isolated / "cache" / "fake_ds"
    folder.mkdir(parents=True)
    (folder / "derived.npz").write_bytes(b"npz")
    assert resolve(spec) == folder


def test_missing_data_set_lists_searched_places(isolated, monkeypatch, http_server):
    monkeypatch.setenv("TORCHWORKS_DATA", str(isolated / "env"))
    spec = _spec(http_server.url("/a.txt"), http_server.url("/b.txt"))
    partial = isolated / "env" / "fake_folder"
    partial.mkdir(parents=True)
    (partial / "a.txt").write_bytes(A_TXT)
    (isolated / "given").mkdir()  # exists but holds nothing
    with pytest.raises(DataNotFoundError) as info:
        resolve(spec, data_dir=isolated / "given")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for loc in candidate_locations(spec, isolated / "given"):
        assert str(loc.path) in msg
    assert str(isolated / "cache" / "fake_ds") in msg
    assert "missing sub/b.txt" in msg  # says why the partial copy did not count
    assert "torchworks data path fake_ds --download" in msg
    assert "TORCHWORKS_DATA" in msg and "--data-dir" in msg
    assert http_server.requests == []  # never downloads implicitly


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownNameError, match="fashion_mnist"):
        resolve("fashion_mnst")
    with pytest.raises(UnknownNameError):
        verify("no_such_data_set_anywhere")


def test_download_goes_to_cache_once(isolated, http_server):
    spec = _spec(http_server.add("/a.txt", A_TXT), http_server.add("/b.txt", B_TXT))
    path = dataset_path(spec, download=True)
    assert path == isolated / "cache" / "fake_ds"
    assert (path / "sub" / "b.txt").read_bytes() == B_TXT
    assert len(http_server.requests) == 2
    assert resolve(spec) == path  # found offline afterwards, no new request
    assert dataset_path(spec, download=True) == path
    assert len(http_server.requests) == 2


def test_download_with_data_dir_goes_there(isolated, http_server):
    spec = _spec(http_server.add("/a.txt", A_TXT), http_server.add("/b.txt", B_TXT))
    path = resolve(spec, data_dir=isolated / "mine", download=True)
    assert path == isolated / "mine" / "fake_ds"
    assert resolve(spec, data_dir=isolated / "mine") == path
    assert not (isolated / "cache").exists()


def test_fetch_skips_good_files_and_replaces_bad_ones(isolated, http_server):
    spec = _spec(http_server.add("/a.txt", A_TXT), http_server.add("/b.txt", B_TXT))
    dest = _make_copy(isolated / "dest")
    (dest / "sub" / "b.txt").write_bytes(b"tampered")
    fetch(spec, dest, progress=False)
    assert (dest / "sub" / "b.txt").read_bytes() == B_TXT
    assert [r[0] for r in http_server.requests] == ["/b.txt"]


def test_fetch_bad_checksum_raises(isolated, http_server):
    spec = _spec(http_server.add("/a.txt", b"ALPHA\n"), http_server.add("/b.txt", B_TXT))
    with pytest.raises(DataError, match="checksum mismatch"):
        resolve(spec, download=True)
    assert not (isolated / "cache" / "fake_ds" / "a.txt").exists()


def test_fetch_extracts_archive_and_checks_members(isolated, http_server):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("inner/x.txt")
        info.size = len(A_TXT)
        tar.addfile(info, io.BytesIO(A_TXT))
    data = buf.getvalue()
    url = http_server.add("/pack.tar.gz", data)
    spec = _spec(files=(RemoteFile(url, _sha(data), "pack.tar.gz", extract=True),),
                 expected=("inner/x.txt",), known_sha256=(("inner/x.txt", _sha(A_TXT)),))
    path = resolve(spec, download=True)
    assert (path / "inner" / "x.txt").read_bytes() == A_TXT
    assert not (path / "pack.tar.gz").exists()  # unpacked, then deleted
    assert [c.ok for c in verify(spec)] == [True]
    bad = _spec(files=spec.files, expected=("inner/x.txt",), known_sha256=(("inner/x.txt", "1" * 64),))
    with pytest.raises(DataError, match="failed its check"):
        fetch(bad, isolated / "other", progress=False)


def test_verify_reports_each_file(isolated):
    folder = _make_copy(isolated / "cache" / "fake_ds")
    spec = _spec(expected=("a.txt", "sub/b.txt", "c.txt"))  # c.txt: expected, no digest known (e.g. unpacked)
    (folder / "c.txt").write_bytes(b"anything")
    rows = verify(spec)
    assert [(r.path.name, r.ok) for r in rows] == [("a.txt", True), ("b.txt", True), ("c.txt", True)]
    assert rows[0].detail == "sha256 ok" and "no checksum" in rows[2].detail
    (folder / "a.txt").write_bytes(b"changed")
    row = verify(spec)[0]
    assert not row.ok and _sha(A_TXT) in row.detail and _sha(b"changed") in row.detail
    (folder / "c.txt").unlink()  # incomplete now: the folder is still checked and shows what is missing
    assert [(r.path.name, r.ok, r.detail) for r in verify(spec)][2] == ("c.txt", False, "missing")


def test_verify_without_any_copy_raises(isolated):
    with pytest.raises(DataNotFoundError):
        verify(_spec())


def test_shared_folder_found_from_the_package_location(isolated, monkeypatch):
    """The real ../shared/data next to the project root is found even when the cwd is elsewhere."""
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not (shared / "tinyshakespeare" / "input.txt").exists():
        pytest.skip("no ../shared/data next to the project root")
    # The cwd is the file-system root, so no shared/data above the cwd can be found first (a /tmp/shared link
    # above the scratch folder once made this test compare two different copies of the same data).
    if Path("/shared/data").is_dir():
        pytest.skip("a /shared/data folder exists at the file-system root")
    monkeypatch.chdir("/")
    assert shared_data_dirs()[0] == shared
    assert resolve("tinyshakespeare").resolve() == (shared / "tinyshakespeare").resolve()


def test_explicit_data_dir_that_does_not_exist_is_an_error(tmp_path):
    from torchworks.core.errors import DataNotFoundError
    from torchworks.data import dataset_path

    missing = tmp_path / "typo"
    with pytest.raises(DataNotFoundError, match=r"data directory '.*typo' does not exist; fix the path"):
        dataset_path("fashion_mnist", data_dir=missing)


def _wikitext_train_only(url: str) -> DatasetSpec:
    """The registered wikitext2 spec reduced to its train.txt, served from ``url`` (same git blob pin)."""
    from dataclasses import replace

    spec = get_spec("wikitext2")
    train = next(f for f in spec.files if f.path == "train.txt")
    return replace(spec, name="wikitext2_train", files=(replace(train, url=url),), expected=("train.txt",))


def test_wikitext_train_download_refuses_other_bytes(isolated, http_server):
    """train.txt has no sha256 on record; a download is still verified, against the git blob id of the pinned
    pytorch/examples commit, so a tampered or truncated file is refused and nothing is left behind."""
    spec = _wikitext_train_only(http_server.add("/train.txt", b" = Valkyria Chronicles III = \n tampered\n"))
    with pytest.raises(DataError, match="expected git blob 2d84b35af79e411d73ea7cae83c73964c6ac83b4"):
        resolve(spec, download=True)
    assert not (isolated / "cache" / "wikitext2_train").exists()


def test_git_blob_pinned_file_downloads_and_verifies(isolated, http_server):
    from torchworks.data.download import git_blob_id

    (isolated / "ref.txt").write_bytes(A_TXT)
    spec = _spec(files=(RemoteFile(http_server.add("/a.txt", A_TXT), None, "a.txt",
                                   git_blob=git_blob_id(isolated / "ref.txt")),))
    path = resolve(spec, download=True)
    assert [(c.ok, c.detail) for c in verify(spec)] == [(True, "git blob ok")]
    (path / "a.txt").write_bytes(b"changed\n")
    [row] = verify(spec)
    assert not row.ok and row.detail.startswith("git blob mismatch")
    fetch(spec, path, progress=False)  # a bad copy is fetched again, a good one is not
    fetch(spec, path, progress=False)
    assert (path / "a.txt").read_bytes() == A_TXT and len(http_server.requests) == 2


def test_failed_download_leaves_no_empty_folder(isolated):
    spec = _spec()  # port 9 on 127.0.0.1: nothing listens
    with pytest.raises(DataError, match="cannot download"):
        resolve(spec, download=True)
    assert not (isolated / "cache" / "fake_ds").exists()
