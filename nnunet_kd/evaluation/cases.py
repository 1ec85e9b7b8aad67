"""Find the cases of a prediction folder and its reference folder and pair them by file name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nnunet_kd.errors import InputError


@dataclass(frozen=True)
class CasePairing:
    """Cases present on both sides, and those skipped (only with ``allow_missing``), each with a reason."""

    cases: list[str]
    skipped: list[dict[str, str]] = field(default_factory=list)


def list_cases(folder: str | Path, file_ending: str, what: str) -> dict[str, Path]:
    """``{case: path}`` for every ``<case><file_ending>`` file in ``folder`` (not recursive, hidden files ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what} folder {folder} does not exist")
    found = {
        p.name[: -len(file_ending)]: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.endswith(file_ending) and not p.name.startswith(".")
    }
    if not found:
        raise InputError(f"{what} folder {folder} has no '*{file_ending}' files")
    return found


def pair_cases(
    references: dict[str, Path], predictions: dict[str, Path], model: str, allow_missing: bool
) -> CasePairing:
    """Pair by case name. Without ``allow_missing``, a case missing on either side is an :class:`InputError`;
    with it, such cases are skipped and listed (reason ``no prediction`` or ``no reference``)."""
    no_prediction = sorted(set(references) - set(predictions))
    no_reference = sorted(set(predictions) - set(references))
    if (no_prediction or no_reference) and not allow_missing:
        parts = []
        if no_prediction:
            parts.append(f"no prediction for {_names(no_prediction)}")
        if no_reference:
            parts.append(f"no reference for {_names(no_reference)}")
        raise InputError(f"model {model}: {'; '.join(parts)} (use --allow-missing to skip and list them)")
    skipped = [{"model": model, "case": c, "reason": "no prediction"} for c in no_prediction]
    skipped += [{"model": model, "case": c, "reason": "no reference"} for c in no_reference]
    cases = sorted(set(references) & set(predictions))
    if not cases:
        raise InputError(f"model {model}: no case has both a prediction and a reference")
    return CasePairing(cases, skipped)


def _names(cases: list[str], shown: int = 5) -> str:
    more = f" and {len(cases) - shown} more" if len(cases) > shown else ""
    return ", ".join(cases[:shown]) + more
