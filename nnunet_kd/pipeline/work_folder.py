"""A pipeline work folder belongs to one set of options: a rerun with other options is refused, naming them.

Every stage is skipped when its output exists, so a rerun with another ``--seed``, ``--num-strong`` or trainer in the
same folder would report every stage done and reprint the old report. The options that shape the outputs are
recorded in ``<work dir>/pipeline.json`` by the first run and compared by every later one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nnunet_kd.atomic import atomic_write_json
from nnunet_kd.errors import ConfigurationError

OPTIONS_FILE = "pipeline.json"


def _flat(options: Any, prefix: str = "") -> dict[str, Any]:
    """``{"profile.phantom.seed": 1, ...}``: nested dicts flattened, tuples as lists (as JSON stores them)."""
    if isinstance(options, dict):
        flat: dict[str, Any] = {}
        for key, value in options.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.loads(json.dumps(options))}


def claim_work_folder(work_dir: Path, options: dict[str, Any]) -> None:
    """Record ``options`` in a new work folder, or check that an existing one was made with the same.

    Raises:
        ConfigurationError: the folder was made with other options (the message lists each difference).
    """
    path = Path(work_dir) / OPTIONS_FILE
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except ValueError as error:
            raise ConfigurationError(f"{path} is not valid JSON ({error}); remove the work folder or use another "
                                     "--work-dir") from None
        old, new = _flat(recorded), _flat(options)
        differences = [f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(old.keys() | new.keys())
                       if old.get(key) != new.get(key)]
        if differences:
            shown = "; ".join(differences[:8]) + (f"; ... ({len(differences)} in all)" if len(differences) > 8 else "")
            raise ConfigurationError(f"work folder {work_dir} was made with other options ({shown}); its stages "
                                     "would not be redone: use another --work-dir, or remove this one")
        return
    atomic_write_json(path, options)
