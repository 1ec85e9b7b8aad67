"""Write files and folders so that an interruption never leaves a half-written result.

Everything is written under a temporary name in the same folder and renamed into place at the end (a rename on
one file system is atomic). A rerun after an interruption finds either the finished result or nothing; stale
temporary names from a killed run are recognisable by their ``.tmp-`` infix and are removed by :func:`remove_stale`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_INFIX = ".tmp-"


def _temporary_sibling(path: Path) -> Path:
    """``dir/.case.tmp-1a2b3c4d.nii.gz`` for ``dir/case.nii.gz``: hidden, recognisable, same file ending."""
    stem, dot, endings = path.name.partition(".")
    return path.parent / f".{stem}{TMP_INFIX}{uuid.uuid4().hex[:8]}{dot}{endings}"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``, on error removed.

    Works for files and folders (whatever the body creates at the yielded path).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(target)
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (sorted keys are not imposed: order is kept)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def is_temporary(path: str | os.PathLike) -> bool:
    """True for names produced by :func:`atomic_path` (left behind only by a killed process)."""
    return TMP_INFIX in Path(path).name


def remove_stale(folder: str | os.PathLike) -> int:
    """Remove leftovers of killed writers in ``folder`` (not recursive); returns how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if is_temporary(p)]
    for p in stale:
        _remove(p)
    return len(stale)


def remove_stale_for(path: str | os.PathLike) -> int:
    """Remove what killed writers of ``path`` left beside it (the temporary names :func:`atomic_path` gives it);
    returns how many were removed. Call it before writing ``path`` again."""
    target = Path(path)
    stem, dot, endings = target.name.partition(".")
    stale = [p for p in target.parent.glob(f".{stem}{TMP_INFIX}*{dot}{endings}")] if target.parent.is_dir() else []
    for p in stale:
        _remove(p)
    return len(stale)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
