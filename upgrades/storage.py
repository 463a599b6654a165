"""Where artifacts (backups, log captures) are kept: Django's storage API, so that the worker that
writes a backup and the web process that serves it need share nothing but the storage
(STORAGES["artifacts"]: a folder under MEDIA_ROOT, or an S3-compatible bucket; docs/artifacts.md).

Every byte is hashed exactly once on the way in (while the storage reads the local file) and
checked again on the way out (while the download streams), so a file changed in the storage is
never handed out as the backup that was taken.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
PREFIX = "artifacts"


class ArtifactTampered(Exception):
    """The bytes in the storage are not the ones recorded when the artifact was written."""


def artifacts_storage() -> Storage:
    """STORAGES["artifacts"] when set (settings.py always sets it), else the default storage."""
    try:
        return storages["artifacts"]
    except Exception:  # noqa: BLE001 - InvalidStorageError: no "artifacts" alias configured
        return storages["default"]


@dataclass(frozen=True)
class Stored:
    storage_name: str
    sha256: str
    size_bytes: int
    where: str  # for people and hooks: the file's path when the storage has one, else a URI


class _HashingReader(io.RawIOBase):
    """A local file as the storage reads it, hashing every byte the first time it is read.

    Storages may seek back and read again (boto computes a checksum, then sends; a retry starts
    over): bytes are hashed once, in order, up to the furthest point read. If a storage ever
    skipped ahead, `complete` is False and the caller hashes the file on its own instead."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw = raw
        self.size = size
        self.name = getattr(raw, "name", "")
        self._hash = hashlib.sha256()
        self._hashed = 0
        self._gap = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        start = self._raw.tell()
        data = self._raw.read(size)
        end = start + len(data)
        if start > self._hashed:
            self._gap = True
        elif end > self._hashed:
            self._hash.update(data[self._hashed - start :])
            self._hashed = end
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @property
    def complete(self) -> bool:
        return not self._gap and self._hashed == self.size

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_store(*, local_path: Path, upgrade_id: int) -> Stored:
    """Stream a file a run wrote locally into the artifacts storage, hashing it on the way, and
    remove the local file. The storage picks the final name (it never overwrites one)."""
    storage = artifacts_storage()
    size = local_path.stat().st_size
    with local_path.open("rb") as raw:
        reader = _HashingReader(raw, size)
        name = storage.save(
            f"{PREFIX}/upgrade-{upgrade_id}/{local_path.name}", File(reader, name=local_path.name)
        )
    digest = reader.hexdigest() if reader.complete else file_sha256(local_path)
    local_path.unlink()
    return Stored(storage_name=name, sha256=digest, size_bytes=size, where=_where(storage, name))


def artifact_store_stream(*, handle: IO[bytes], size: int, name: str, upgrade_id: int) -> Stored:
    """Stream an open file that is not on this machine (a dump read back from a host over SFTP)
    into the artifacts storage, hashing it on the way; ``size`` is what it should hold. The
    size and sha256 recorded are those of the bytes that went in; a file that held another
    size is removed again and refused (OSError), never recorded as a backup."""
    storage = artifacts_storage()
    reader = _HashingReader(handle, size)
    stored = storage.save(f"{PREFIX}/upgrade-{upgrade_id}/{name}", File(reader, name=name))
    if reader.complete:
        digest, length = reader.hexdigest(), size
    else:  # the storage skipped ahead, or the file ended short: hash what the storage holds
        hasher, length = hashlib.sha256(), 0
        with storage.open(stored, "rb") as kept:
            for chunk in iter(lambda: kept.read(CHUNK_BYTES), b""):
                hasher.update(chunk)
                length += len(chunk)
        digest = hasher.hexdigest()
        if length != size:
            # A dump cut short (or still growing) is no backup: keep nothing rather than record it.
            storage.delete(stored)
            raise OSError(f"the file held {length} bytes where {size} were expected")
    return Stored(
        storage_name=stored, sha256=digest, size_bytes=length, where=_where(storage, stored)
    )


def _where(storage: Storage, name: str) -> str:
    try:
        return storage.path(name)
    except NotImplementedError:  # no local path: an object store
        bucket = getattr(storage, "bucket_name", "")
        return f"s3://{bucket}/{name}" if bucket else name


class VerifiedReader(io.RawIOBase):
    """A stored artifact read in chunks and hashed as it goes, one chunk held back: the last
    chunk is handed out only once the whole object has matched its recorded size and sha256.
    A mismatch raises ArtifactTampered instead, so a download stops short of its announced
    Content-Length and no client takes it for complete."""

    def __init__(self, handle: IO[bytes], *, sha256: str, size_bytes: int, label: str) -> None:
        self._handle = handle
        self._expected = sha256
        self._size = size_bytes
        self._label = label
        self._hash = hashlib.sha256()
        self._seen = 0
        self._ahead: bytes | None = None
        self.verified = False

    def readable(self) -> bool:
        return True

    def _next(self, size: int) -> bytes:
        data = self._handle.read(size)
        self._hash.update(data)
        self._seen += len(data)
        if self._seen > self._size:
            self._fail(f"it is longer than the {self._size} bytes recorded")
        return data

    def _fail(self, why: str) -> None:
        logger.error("Artifact %s does not match what was stored: %s", self._label, why)
        raise ArtifactTampered(f"{self._label} has changed since it was stored: {why}.")

    def _finish(self) -> None:
        if self._seen != self._size:
            self._fail(f"it has {self._seen} bytes, {self._size} were recorded")
        if self._hash.hexdigest() != self._expected:
            self._fail("its sha256 differs from the one recorded")
        self.verified = True

    def read(self, size: int = -1) -> bytes:
        size = CHUNK_BYTES if size is None or size < 0 else size
        if self._ahead is None:
            self._ahead = self._next(size)
            if not self._ahead:
                self._finish()
        current = self._ahead
        if not current:
            return b""
        self._ahead = self._next(size)
        if not self._ahead:
            self._finish()  # before the last bytes leave
        return current

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            super().close()


def artifact_open(
    *, storage_name: str, sha256: str, size_bytes: int, label: str, legacy_path: str = ""
) -> VerifiedReader:
    """The artifact for reading, verified as it is read (FileNotFoundError when it is gone).
    Without a storage name (kept before artifacts went to a storage) it is read from the path
    recorded then, which only the node that wrote it may see."""
    if not storage_name:
        if not legacy_path:
            raise FileNotFoundError(label)
        handle: IO[bytes] = Path(legacy_path).open("rb")  # noqa: SIM115 - the reader closes it
        return VerifiedReader(handle, sha256=sha256, size_bytes=size_bytes, label=label)
    storage = artifacts_storage()
    if not storage.exists(storage_name):
        raise FileNotFoundError(storage_name)
    handle = storage.open(storage_name, "rb")
    return VerifiedReader(handle, sha256=sha256, size_bytes=size_bytes, label=label)


@contextmanager
def artifact_local_copy(
    *, storage_name: str, sha256: str, size_bytes: int, label: str
) -> Iterator[Path]:
    """A verified copy of the artifact in a local temporary folder, for a hook that wants a
    path (a database restore); removed afterwards. ArtifactTampered when it does not match."""
    scratch = Path(settings.DATA_DIR) / "scratch"  # under the data folder, as all we write
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="restore-", dir=scratch))
    try:
        target = folder / Path(storage_name).name
        with (
            artifact_open(
                storage_name=storage_name, sha256=sha256, size_bytes=size_bytes, label=label
            ) as reader,
            target.open("wb") as out,
        ):
            shutil.copyfileobj(reader, out, CHUNK_BYTES)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
