"""Put a file into a dataset by hard link, copy or symbolic link.

Hard links (the default) cost no space and survive moving or deleting the source folder (both names point at the
same data); they need source and target on one file system, otherwise we copy. Symbolic links are available for
read-only shared storage but break when the source moves.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Literal

LinkMode = Literal["hardlink", "copy", "symlink"]
LINK_MODES = ("hardlink", "copy", "symlink")


def place_file(source: str | os.PathLike, target: str | os.PathLike, mode: LinkMode = "hardlink") -> str:
    """Create ``target`` from ``source``; returns the mode actually used (``hardlink`` may become ``copy``)."""
    source, target = Path(source), Path(target)
    if mode not in LINK_MODES:
        raise ValueError(f"link mode {mode!r} is not one of {LINK_MODES}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    if mode == "symlink":
        target.symlink_to(source.resolve())
        return mode
    if mode == "hardlink":
        try:
            os.link(source, target)
            return mode
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copy2(source, target)
    return "copy"
