"""The download path against a local HTTP server: success, mirror fallback, truncation,
hash mismatch, unreachable host, offline mode, and verification of cached files."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from jflows.data import cache
from jflows.data.cache import (
    CorruptDataError,
    MissingDataError,
    RemoteFile,
    data_home,
    extract_member,
    fetch,
    parse_guard,
)

BODY = b"jflows test payload " * 1000
SHA = hashlib.sha256(BODY).hexdigest()


def _remote(*urls, sha=SHA):
    return RemoteFile("sub/file.bin", tuple(urls), sha, "test file")


def test_data_home_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("JFLOWS_DATA_DIR", str(tmp_path / "env"))
    assert data_home(tmp_path / "arg") == tmp_path / "arg"
    assert data_home() == tmp_path / "env"
    monkeypatch.delenv("JFLOWS_DATA_DIR")
    assert data_home() == Path("~/.cache/jflows").expanduser()


def test_download_verifies_and_places_file(http_server, tmp_path, capsys):
    http_server.routes["/f.bin"] = (200, BODY, None)
    path = fetch(_remote(http_server.url("/f.bin")), tmp_path)
    assert path == tmp_path / "sub" / "file.bin"
    assert path.read_bytes() == BODY
    assert "jflows: downloading test file" in capsys.readouterr().err  # the progress bar
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]
    assert (path.parent / "file.bin.sha256").read_text().startswith(SHA)  # no rehash later
    # Second call: served from the cache (the server would now answer 404).
    http_server.routes.clear()
    assert fetch(_remote(http_server.url("/f.bin")), tmp_path).read_bytes() == BODY


def test_falls_back_to_mirror(http_server, tmp_path):
    http_server.routes["/mirror.bin"] = (200, BODY, None)
    remote = _remote(http_server.url("/gone.bin"), http_server.url("/mirror.bin"))
    assert fetch(remote, tmp_path).read_bytes() == BODY


def test_truncated_download_is_rejected_and_not_kept(http_server, tmp_path):
    http_server.routes["/t.bin"] = (200, BODY[:1000], len(BODY))  # declares more than sent
    with pytest.raises(CorruptDataError, match="truncated|broke"):
        fetch(_remote(http_server.url("/t.bin"), sha=None), tmp_path)
    assert not (tmp_path / "sub").exists() or not any((tmp_path / "sub").iterdir())


def test_hash_mismatch_is_rejected_and_not_kept(http_server, tmp_path):
    http_server.routes["/c.bin"] = (200, BODY[:-1] + b"X", None)
    with pytest.raises(CorruptDataError, match="SHA-256 mismatch"):
        fetch(_remote(http_server.url("/c.bin")), tmp_path)
    assert not any((tmp_path / "sub").iterdir())


def test_unreachable_url_fails_fast_naming_url_and_path(closed_port_url, tmp_path):
    start = time.monotonic()
    with pytest.raises(MissingDataError) as err:
        fetch(_remote(closed_port_url), tmp_path, timeout=5)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert closed_port_url in message
    assert str(tmp_path / "sub" / "file.bin") in message


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_offline_never_touches_network(how, tmp_path, monkeypatch):
    remote = _remote("http://192.0.2.1/never-contacted.bin")  # TEST-NET: would hang, not fail
    kwargs = {"download": False} if how == "argument" else {}
    if how == "environment":
        monkeypatch.setenv("JFLOWS_OFFLINE", "1")
    with pytest.raises(MissingDataError, match="never-contacted.bin") as err:
        fetch(remote, tmp_path, **kwargs)
    assert str(tmp_path / "sub" / "file.bin") in str(err.value)


def test_cached_file_with_wrong_hash_is_never_used(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(BODY[:500])
    with pytest.raises(CorruptDataError, match="expected SHA-256"):
        fetch(_remote("http://unused.invalid/x"), tmp_path, download=False)


def test_verified_stamp_skips_rehash_until_file_changes(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(BODY)
    remote = _remote("http://unused.invalid/x")
    fetch(remote, tmp_path, download=False)
    calls = []
    monkeypatch.setattr(cache, "sha256sum", lambda p: calls.append(p) or SHA)
    fetch(remote, tmp_path, download=False)
    assert calls == []  # stamp matched
    target.write_bytes(BODY)  # same content, new mtime: rehashed
    os.utime(target, ns=(1, 1))
    fetch(remote, tmp_path, download=False)
    assert calls == [target]


def test_remote_file_rejects_malformed_hash():
    with pytest.raises(ValueError, match="64 lowercase hex"):
        RemoteFile("a", ("http://x",), "abc")
    with pytest.raises(ValueError, match="at least one URL"):
        RemoteFile("a", ())


def test_parse_guard_reports_path_and_cause(tmp_path):
    with pytest.raises(CorruptDataError, match=r"f\.npy could not be read as a thing: EOFError"):
        with parse_guard(tmp_path / "f.npy", "a thing"):
            raise EOFError("short")


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_extract_member_by_suffix(kind, tmp_path):
    archive = tmp_path / f"a.{kind}"
    if kind == "tar":
        with tarfile.open(archive, "w:gz") as t:
            info = tarfile.TarInfo("data/power/data.npy")
            info.size = len(BODY)
            t.addfile(info, io.BytesIO(BODY))
    else:
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("data/power/data.npy", BODY)
    out = extract_member(archive, "power/data.npy", tmp_path / "out" / "data.npy")
    assert out.read_bytes() == BODY
    with pytest.raises(CorruptDataError, match="exactly one member"):
        extract_member(archive, "gas/x.pickle", tmp_path / "out" / "x")


def test_extract_member_from_truncated_archive(tmp_path):
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        info = tarfile.TarInfo("data/power/data.npy")
        info.size = len(BODY)
        t.addfile(info, io.BytesIO(BODY))
    archive.write_bytes(archive.read_bytes()[:60])
    with pytest.raises(CorruptDataError, match="could not be read"):
        extract_member(archive, "power/data.npy", tmp_path / "out.npy")


def test_optional_import_names_pip_command():
    with pytest.raises(ImportError, match="pip install not-a-real-pkg-xyz"):
        cache.optional_import("not_a_real_pkg_xyz", "not-a-real-pkg-xyz", "Doing a thing")
