"""The data cache: where dataset files live, how they are downloaded and how they are checked.

Cache directory, first that is set wins:

1. the ``data_dir`` argument of a loader,
2. the ``JFLOWS_DATA_DIR`` environment variable,
3. ``~/.cache/jflows``.

A dataset file is described by a :class:`RemoteFile`: its path inside the cache, the
official URL (then mirrors) and, where it is published or independently confirmed, its
SHA-256. :func:`fetch` returns the local path, downloading when the file is missing:

* the download goes to a temporary file in the target folder with a tqdm progress bar that
  names the file, and is renamed into place (atomic on POSIX) only after it is complete
  (``Content-Length`` bytes received) and its SHA-256 matches;
* a file already in the cache is hashed once and a stamp ``<file>.sha256`` remembers the
  size and modification time it was verified at, so large files are not rehashed on every
  load; a cached file whose hash does not match raises :class:`CorruptDataError` and is
  never used;
* without network (or with ``download=False`` or ``JFLOWS_OFFLINE=1``) a missing file
  raises :class:`MissingDataError` at once, naming the URL and the exact local path to put
  the file at.

Files whose official hash cannot be stated (the publisher gives none and none could be
confirmed independently) are verified by parsing: every loader turns a parse failure into
:class:`CorruptDataError` via :func:`parse_guard`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import wave
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

ENV_DATA_DIR = "JFLOWS_DATA_DIR"
ENV_OFFLINE = "JFLOWS_OFFLINE"
DEFAULT_DATA_DIR = "~/.cache/jflows"
_CHUNK = 1 << 20


class DataError(Exception):
    """Base class of the errors the data loaders raise about files."""


class MissingDataError(DataError, FileNotFoundError):
    """A dataset file is not on disk and could not be downloaded."""


class CorruptDataError(DataError, ValueError):
    """A dataset file is truncated, fails its hash, or does not parse as its format."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable dataset file.

    Attributes:
      relpath: path inside the cache directory, e.g. ``"mnist/t10k-labels-idx1-ubyte.gz"``.
      urls: the official URL first, then mirrors; tried in order.
      sha256: hex digest of the file, or ``None`` where no trustworthy hash is known
        (then the loader verifies the file by parsing it).
      description: what the file is, shown in the progress bar and in error messages.
    """

    relpath: str
    urls: tuple[str, ...]
    sha256: str | None = None
    description: str = ""

    def __post_init__(self):
        if not self.urls:
            raise ValueError(f"RemoteFile {self.relpath!r}: needs at least one URL.")
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ValueError(
                f"RemoteFile {self.relpath!r}: sha256 must be 64 lowercase hex digits, "
                f"got {self.sha256!r}."
            )

    @property
    def name(self) -> str:
        return self.description or Path(self.relpath).name


def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``data_dir`` > ``$JFLOWS_DATA_DIR`` > ``~/.cache/jflows``."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _put_hint(remote: RemoteFile, path: Path) -> str:
    urls = "\n  ".join(remote.urls)
    return (
        f"Download {remote.name} from\n  {urls}\nand put it at\n  {path}\n"
        f"(the cache directory is the loader's data_dir argument, else ${ENV_DATA_DIR}, "
        f"else {DEFAULT_DATA_DIR})."
    )


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def _stamp(path: Path, sha256: str) -> tuple[Path, str]:
    """The stamp file of ``path`` and the line it holds once ``path`` matched ``sha256``."""
    stat = path.stat()
    return path.with_name(path.name + ".sha256"), f"{sha256} {stat.st_size} {stat.st_mtime_ns}"


def _write_stamp(path: Path, sha256: str) -> None:
    stamp, key = _stamp(path, sha256)
    with contextlib.suppress(OSError):  # a read-only folder only costs a rehash next time
        stamp.write_text(key + "\n")


def verify(path: Path, remote: RemoteFile) -> None:
    """Check a cached file against ``remote.sha256`` (no-op when no hash is known).

    The result is remembered in ``<path>.sha256`` together with the file's size and
    modification time, so an unchanged file is hashed once.
    """
    if remote.sha256 is None:
        return
    stamp, key = _stamp(path, remote.sha256)
    if stamp.exists() and stamp.read_text().strip() == key:
        return
    got = sha256sum(path)
    if got != remote.sha256:
        raise CorruptDataError(
            f"{path} does not have the expected SHA-256 of {remote.name}: expected "
            f"{remote.sha256}, got {got}. The file is truncated or not the official one. "
            f"Delete it and run again to download it, or replace it by hand.\n"
            + _put_hint(remote, path)
        )
    _write_stamp(path, remote.sha256)


def fetch(
    remote: RemoteFile,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Local path of ``remote`` inside the cache, downloading and verifying it if needed.

    Args:
      remote: the file to get.
      data_dir: cache directory (see :func:`data_home`).
      download: when False (or ``$JFLOWS_OFFLINE`` is set) a missing file raises
        :class:`MissingDataError` without touching the network.
      timeout: socket timeout in seconds for each connection attempt.

    Raises:
      MissingDataError: the file is absent and no URL could be reached.
      CorruptDataError: the cached or downloaded file is truncated or fails its hash.
    """
    path = data_home(data_dir) / remote.relpath
    if path.exists():
        verify(path, remote)
        return path
    if not download or _offline():
        why = "download=False" if not download else f"${ENV_OFFLINE} is set"
        raise MissingDataError(f"{path} is missing ({why}).\n" + _put_hint(remote, path))
    path.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    corrupt = False
    for url in remote.urls:
        try:
            _download(url, path, remote, timeout)
            return path
        except CorruptDataError as err:
            corrupt = True
            failures.append(f"{url}: {err}")
        except (urllib.error.URLError, OSError) as err:  # HTTPError is a URLError
            failures.append(f"{url}: {err}")
    error = CorruptDataError if corrupt else MissingDataError
    raise error(
        f"Could not download {remote.name}:\n  " + "\n  ".join(failures) + "\n"
        + _put_hint(remote, path)
    )


def _download(url: str, path: Path, remote: RemoteFile, timeout: float) -> None:
    """Stream ``url`` to a temporary file beside ``path``; rename it in when verified."""
    request = urllib.request.Request(url, headers={"User-Agent": "jflows-data"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as r:
            length = r.headers.get("Content-Length")
            total = int(length) if length is not None else None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"jflows: downloading {remote.name}", leave=False,
            ) as bar:
                while True:
                    try:
                        chunk = r.read(_CHUNK)
                    except Exception as err:  # http.client.IncompleteRead and friends
                        raise CorruptDataError(
                            f"connection broke after {received} bytes: {err!r}"
                        ) from err
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise CorruptDataError(
                f"truncated download: got {received} of {total} bytes (Content-Length)."
            )
        if remote.sha256 is not None and digest.hexdigest() != remote.sha256:
            raise CorruptDataError(
                f"SHA-256 mismatch: expected {remote.sha256}, got {digest.hexdigest()}."
            )
        os.replace(tmp, path)
        if remote.sha256 is not None:
            _write_stamp(path, remote.sha256)  # hashed while streaming: no second pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


_PARSE_ERRORS = (
    ValueError, EOFError, OSError, KeyError, IndexError, struct.error, zlib.error,
    pickle.UnpicklingError, tarfile.TarError, zipfile.BadZipFile, wave.Error,
)


@contextlib.contextmanager
def parse_guard(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn any parse failure inside the block into a :class:`CorruptDataError`.

    The message names the file, what it should have been, and the original error, so a
    truncated or wrong file is reported and never silently used.
    """
    try:
        yield
    except DataError:
        raise
    except _PARSE_ERRORS as err:
        raise CorruptDataError(
            f"{path} could not be read as {what}: {type(err).__name__}: {err}. The file is "
            f"truncated, corrupt or of another format; delete it (it is downloaded again "
            f"where the loader can) or replace it with the official file."
        ) from err


def extract_member(archive: Path, member_suffix: str, dest: Path) -> Path:
    """Extract the one member of a tar or zip ``archive`` whose name ends with
    ``member_suffix`` to ``dest`` (via a temporary file and an atomic rename).

    Raises:
      CorruptDataError: the archive is unreadable or has no (or several) such members.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with parse_guard(archive, "a tar or zip archive"):
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                names = [n for n in z.namelist() if _matches(n, member_suffix)]
                _one(archive, member_suffix, names)
                _copy_atomic(lambda: z.open(names[0]), dest)
        else:
            with tarfile.open(archive) as t:
                members = [m for m in t if m.isfile() and _matches(m.name, member_suffix)]
                _one(archive, member_suffix, [m.name for m in members])
                _copy_atomic(lambda: t.extractfile(members[0]), dest)
    return dest


def _matches(name: str, suffix: str) -> bool:
    name = name.replace("\\", "/")
    return name == suffix or name.endswith("/" + suffix)


def _one(archive: Path, suffix: str, names: list[str]) -> None:
    if len(names) != 1:
        raise CorruptDataError(
            f"{archive}: expected exactly one member ending in {suffix!r}, found {names}."
        )


def _copy_atomic(open_src, dest: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, open_src() as src:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp_name, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def optional_import(module: str, pip_name: str, purpose: str):
    """Import an optional dependency or fail with the ``pip install`` line that fixes it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the optional package {pip_name!r}, which is not installed. "
            f"Install it with `pip install {pip_name}`."
        ) from err
