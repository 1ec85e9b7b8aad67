"""What a resumable job read, in a few bytes: a rerun compares it and redoes exactly what depends on changed input.

A file is fingerprinted by its name, size and modification time (reading whole CT volumes or checkpoints again on
every rerun would cost as much as the work itself); a job's fingerprint combines its files and any settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def files_fingerprint(files: Iterable[str | os.PathLike | None], settings: Any = None) -> str:
    """A short hex digest of each file's name, size and modification time (in the given order) and of ``settings``
    (anything JSON can write). Missing files count as missing, so their appearance changes the fingerprint too."""
    digest = hashlib.sha256()
    for file in files:
        if file is None:
            continue
        path = Path(file)
        try:
            stat = path.stat()
            digest.update(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{path.name}|missing\n".encode())
    if settings is not None:
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
