"""Which source dataset a case comes from: the case-name prefix before the first ``_``, or a mapping file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from nnunet_kd.errors import InputError


def source_from_name(case: str) -> str:
    """``"lung"`` for ``"lung_001"``; the whole name when it has no ``_``."""
    return case.split("_", 1)[0]


def load_source_mapping(path: str | Path) -> dict[str, str]:
    """Read ``{case: source}`` from a JSON object or a two-column CSV (``case,source``; a header row is allowed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"source mapping {path} does not exist")
    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"source mapping {path} is not valid JSON: {error}") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise InputError(f"source mapping {path}: expected a JSON object {{case: source}}")
        return {str(k): v for k, v in mapping.items()}
    mapping = {}
    with path.open(newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or (line_number == 1 and [c.strip().lower() for c in row[:2]] == ["case", "source"]):
                continue
            if len(row) < 2:
                raise InputError(f"source mapping {path}, line {line_number}: expected 'case,source'")
            mapping[row[0].strip()] = row[1].strip()
    return mapping


def assign_sources(cases: list[str], mapping: dict[str, str] | None) -> dict[str, str]:
    """``{case: source}``; with a mapping every case must be in it (else :class:`InputError` naming them)."""
    if mapping is None:
        return {case: source_from_name(case) for case in cases}
    absent = [case for case in cases if case not in mapping]
    if absent:
        raise InputError(f"source mapping has no entry for case {', '.join(absent[:5])}"
                         + (f" and {len(absent) - 5} more" if len(absent) > 5 else ""))
    return {case: mapping[case] for case in cases}
