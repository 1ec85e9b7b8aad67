"""Where things go inside the output dataset folder ``$nnUNet_raw/Dataset<id>_<name>/``.

nnU-Net reads ``dataset.json``, ``imagesTr`` and ``labelsTr``; everything else is ours and nnU-Net ignores it:

- ``boxesTr/<case>.nii.gz``: the box masks of the cases that have them (for box-guided models and box heads);
- ``softLabelsTr/<case>.npz``: optional ensemble probabilities (key ``probabilities``, ``(C, z, y, x)`` float16);
- ``provenance/request.json``: what was asked (teachers, sources, cases, options); a rerun of the same request
  resumes, another request is refused unless ``--overwrite``;
- ``provenance/cases/<case>.json``: one record per finished case, written last (its presence means "done");
- ``provenance/provenance.csv`` / ``provenance.json``: the table over all cases (written by the merge);
- ``qc/index.html`` and ``qc/<case>.png``: the visual QC report (written by the merge).

``dataset.json`` is written by the merge, after every case is done: a dataset without it is unfinished.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from nnunet_kd.atomic import TMP_INFIX, is_temporary

IMAGES, LABELS, BOXES, SOFT_LABELS = "imagesTr", "labelsTr", "boxesTr", "softLabelsTr"
PROVENANCE, CASES, QC = "provenance", "provenance/cases", "qc"
REQUEST_FILE = "provenance/request.json"
CASE_FOLDERS = (IMAGES, LABELS, BOXES, SOFT_LABELS, CASES)


def record_file(folder: Path, case: str) -> Path:
    return folder / CASES / f"{case}.json"


def soft_label_file(folder: Path, case: str) -> Path:
    return folder / SOFT_LABELS / f"{case}.npz"


def _owner(temporary_name: str) -> str:
    """The file stem a temporary name was made for (``.weak_001_0000.tmp-ab12.nii.gz`` -> ``weak_001_0000``)."""
    return temporary_name[1:].split(TMP_INFIX, 1)[0]


def remove_stale_temporaries(folder: Path, cases: Iterable[str] | None = None) -> int:
    """Remove leftovers of killed writers in the dataset's case folders, only for ``cases`` (all when ``None``).

    Restricting to one's own cases lets parts that run at the same time clean up without touching each other.
    """
    wanted = None if cases is None else set(cases)
    removed = 0
    for sub in CASE_FOLDERS + (PROVENANCE, QC, ""):
        directory = folder / sub
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if not is_temporary(path):
                continue
            stem = _owner(path.name)
            case = re.sub(r"_\d{4}$", "", stem) if sub == IMAGES else stem  # images: <case>_<channel>
            if wanted is not None and case not in wanted:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    return removed
