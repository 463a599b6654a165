"""The playbook's configuration backup as a timestamped archive with a checksum."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# --- configuration archive ------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    path: str | None  # None when no archive was made; the reason says why
    sha256: str | None
    size_bytes: int | None
    reason: str


def config_archive(
    *, source_dir: str | os.PathLike[str], dest_dir: str | os.PathLike[str], label: str
) -> ArchiveResult:
    """The playbook's ``cp -r config/ config-backup-$(date +%Y%m%d-%H%M%S)/`` as one
    ``<label>-<UTC stamp>.tar.gz`` in ``dest_dir``, with its SHA-256.

    Symlinks are stored as links, not followed, so nothing outside the folder is copied.
    """
    source = Path(source_dir)
    if not source.is_dir():
        return ArchiveResult(None, None, None, f"The configuration folder {source} does not exist")
    safe_label = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip(".-") or "config-backup"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    dest = Path(dest_dir)
    temp_name = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / f"{safe_label}-{stamp}.tar.gz"
        number = 1
        while target.exists():  # two archives in one second keep both
            target = dest / f"{safe_label}-{stamp}-{number}.tar.gz"
            number += 1
        # Written aside and renamed, so a half-written archive never carries the final name.
        handle, temp_name = tempfile.mkstemp(dir=dest, prefix=".archive-", suffix=".tar.gz")
        os.close(handle)
        with tarfile.open(temp_name, "w:gz") as archive:
            archive.add(source, arcname=source.resolve().name or "config")
        digest = hashlib.sha256()
        with open(temp_name, "rb") as written:
            for block in iter(lambda: written.read(1024 * 1024), b""):
                digest.update(block)
        os.replace(temp_name, target)
        temp_name = None
    except OSError as exc:
        return ArchiveResult(None, None, None, f"Could not archive {source}: {exc}")
    finally:
        if temp_name:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
    size = target.stat().st_size
    files = sum(1 for p in source.rglob("*") if p.is_file())
    return ArchiveResult(
        str(target),
        digest.hexdigest(),
        size,
        f"Archived {files} file(s) from {source} to {target.name} ({size} bytes)",
    )
