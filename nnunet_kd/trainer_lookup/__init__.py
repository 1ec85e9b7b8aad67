"""The folder that ``nnUNet_extTrainer`` points at.

nnU-Net (>= 2.8) imports every module of an ``nnUNet_extTrainer`` folder under a *top-level* name and, after the
lookup, removes from ``sys.modules`` every module whose file lies under that folder. If the folder held the real
trainer modules, a later ``import nnunet_kd.trainers...`` would create a second copy of each class and pickling
would fail ("not the same object"). So this folder holds a single re-export module with a unique name,
``nnunet_kd_trainer_exports.py``: only that module is purged; the classes it hands to nnU-Net are the ones defined
in the installed package ``nnunet_kd.trainers`` and stay importable and picklable.

``export nnUNet_extTrainer=$(nnunet_kd trainer-dir)`` is all a user needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from nnunet_kd.errors import ConfigurationError

EXPORT_MODULE = "nnunet_kd_trainer_exports"


def trainer_dir() -> Path:
    """The folder to put in ``nnUNet_extTrainer`` (inside the installed package: works for wheels and editable)."""
    return Path(__file__).resolve().parent


def _package_source_roots() -> list[Path]:
    """Folders whose modules are importable as ``nnunet_kd.*`` (pointing nnUNet_extTrainer at them is the trap)."""
    import nnunet_kd
    import nnunet_kd.trainers

    roots = {Path(nnunet_kd.__file__).resolve().parent, Path(nnunet_kd.trainers.__file__).resolve().parent}
    roots |= {r.parent for r in list(roots)}
    return sorted(roots)


def check_ext_trainer_value(value: str | None) -> None:
    """Check an ``nnUNet_extTrainer`` value; raises :class:`ConfigurationError` with the fix when it cannot work.

    A value works when one of its entries is :func:`trainer_dir`. It is wrong when it is unset or empty, when an
    entry does not exist, or when an entry is a source folder of this package (duplicate classes, see module doc).
    """
    fix = "run: export nnUNet_extTrainer=$(nnunet_kd trainer-dir)"
    if value is None or not value.strip():
        raise ConfigurationError(f"nnUNet_extTrainer is not set, so nnU-Net cannot find the nnunet_kd trainers; {fix}")
    ours = trainer_dir()
    entries = [e for e in value.split(os.pathsep) if e.strip()]
    source_roots = _package_source_roots()
    for entry in entries:
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise ConfigurationError(f"nnUNet_extTrainer entry {entry!r} is not an existing folder; {fix}")
        resolved = path.resolve()
        if resolved != ours and resolved in source_roots:
            raise ConfigurationError(
                f"nnUNet_extTrainer entry {entry!r} is a source folder of the nnunet_kd package; nnU-Net would "
                f"import the trainers twice and pickling fails. Point it at the lookup folder instead; {fix}"
            )
    if ours not in {Path(e).expanduser().resolve() for e in entries}:
        raise ConfigurationError(
            f"nnUNet_extTrainer={value!r} does not contain the nnunet_kd trainer folder {ours}; {fix}"
        )


def environment_with_trainer_dir(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` whose ``nnUNet_extTrainer`` starts with :func:`trainer_dir` (other entries kept)."""
    env = dict(os.environ if environ is None else environ)
    ours = str(trainer_dir())
    current = [e for e in env.get("nnUNet_extTrainer", "").split(os.pathsep) if e.strip() and e != ours]
    env["nnUNet_extTrainer"] = os.pathsep.join([ours, *current])
    return env
