"""What every converter shares: atomic image writes, the conversion manifest, dataset.json and the splits.

The manifest (``manifest.csv`` and ``manifest.json`` in the output dataset folder) has one row per source case or
series: whether it was kept, why not, its geometry and label statistics. It is rewritten atomically after every
case, so an interrupted run leaves a valid manifest; a rerun with the same settings skips cases whose row says
"kept", whose output files all exist and whose source files (and annotations) have the fingerprint the row recorded
(:func:`nnunet_kd.integrity.fingerprints.files_fingerprint`); a case whose sources changed is converted again.
Cases run in a process pool when asked (:func:`map_cases`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnunet_kd.atomic import atomic_path, atomic_write_json, atomic_write_text, remove_stale
from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.splits import SPLITS_FILE, patient_grouped_folds, write_splits

if TYPE_CHECKING:
    import SimpleITK as sitk

    from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings

KEPT = "kept"
EXCLUDED = "excluded"
MISSING = "missing"
MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"
CHANNEL_NAMES = {"0": "CT"}
LABELS = {"background": 0, "tumor": 1}



@dataclass(frozen=True)
class ConversionOptions:
    """Settings every converter shares: lung crop, held-out test set, folds, workers, output naming, verbosity.

    Each converter's options subclass this (and override ``dataset_name``'s default).
    """

    crop: LungCropSettings | None = None
    test_fraction: float = 0.0
    test_patients: tuple[str, ...] = ()
    num_folds: int = 5
    seed: int = 12345
    num_processes: int = 1
    dataset_name: str = "Converted"
    quiet: bool = False

    def __post_init__(self) -> None:
        """Options are checked when they are made, before a converter creates anything."""
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigurationError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")
        if self.num_folds < 2:
            raise ConfigurationError(f"--folds must be at least 2, got {self.num_folds}")
        if self.num_processes < 1:
            raise ConfigurationError(f"--processes must be at least 1, got {self.num_processes}")

def write_image(image: sitk.Image, path: str | os.PathLike) -> None:
    """Write a ``sitk.Image`` atomically (compressed NIfTI for ``.nii.gz``)."""
    import SimpleITK as sitk

    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def crop_and_write(
    image: sitk.Image, image_out: Path, masks: list[tuple[sitk.Image, Path]], crop: LungCropSettings | None
) -> dict[str, Any]:
    """Optionally crop ``image`` and its ``(mask, path)`` pairs to the lungs (same ranges), write all of them.

    Returns manifest fields: ``shape_zyx``, ``spacing_zyx``, ``crop_method``, ``crop_zyx`` and ``mask_voxels``
    (foreground voxels of the first mask after cropping).
    """
    import numpy as np
    import SimpleITK as sitk

    from nnunet_kd.dataset_conversion.lung_crop import apply_crop, lung_crop

    crop_method, bounds = "", None
    if crop is not None:
        found = lung_crop(image, crop)
        crop_method = found.method if found is not None else "none (no lungs found)"
        if found is not None:
            bounds = found.bounds
            image = apply_crop(image, bounds)
            masks = [(apply_crop(mask, bounds), path) for mask, path in masks]
    write_image(image, image_out)
    for mask, path in masks:
        write_image(mask, path)
    return {
        "shape_zyx": list(reversed(image.GetSize())),
        "spacing_zyx": [round(v, 4) for v in reversed(image.GetSpacing())],
        "crop_method": crop_method, "crop_zyx": [list(b) for b in bounds] if bounds else "",
        "mask_voxels": int(np.count_nonzero(sitk.GetArrayViewFromImage(masks[0][0]))) if masks else 0,
    }


def remove_outputs(paths: Iterable[str | os.PathLike]) -> None:
    """Delete output files of a case that is now excluded (left by an earlier run with other settings)."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


def prepare_output(folder: str | os.PathLike, subfolders: Iterable[str]) -> Path:
    """Create the dataset folder and ``subfolders``; remove leftovers of killed writers in every subfolder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in subfolders:
        (folder / name).mkdir(exist_ok=True)
    remove_stale(folder)
    for child in folder.iterdir():
        if child.is_dir():
            remove_stale(child)
    return folder


class Manifest:
    """Rows keyed by ``source`` (a series UID, a file name), persisted after each :meth:`record`.

    ``settings`` (JSON-able) are stored with the rows; a previous run's rows are only reused when its settings
    were the same, so a rerun with another ROI pattern or crop converts everything again.
    """

    def __init__(self, folder: str | os.PathLike, columns: Iterable[str], settings: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.columns = list(columns)
        self.rows: dict[str, dict[str, Any]] = {}
        self.settings = json.loads(json.dumps(dict(settings), default=str))
        self.summary: dict[str, Any] = {}
        self._previous: dict[str, dict[str, Any]] = {}
        #: sources whose files changed since the previous run (converted again)
        self.changed: set[str] = set()
        path = self.folder / MANIFEST_JSON
        if path.is_file():
            try:
                previous = json.loads(path.read_text())
                if previous.get("settings") == self.settings:
                    self._previous = {str(row.get("source")): row for row in previous.get("rows", [])}
            except (json.JSONDecodeError, AttributeError):
                self._previous = {}

    def finished(self, source: str, outputs: Iterable[str | os.PathLike], inputs: str | None = None
                 ) -> dict[str, Any] | None:
        """The previous run's row for ``source`` if it was kept, all ``outputs`` exist and it recorded the same
        ``inputs`` fingerprint (then it is reused); a changed fingerprint adds ``source`` to :attr:`changed`."""
        row = self._previous.get(source)
        if row is None or row.get("status") != KEPT or not all(Path(p).is_file() for p in outputs):
            return None
        if inputs is not None and row.get("inputs") != inputs:
            self.changed.add(source)
            return None
        return row

    def status_note(self, source: str) -> str:
        """`` (sources changed, converted again)`` for a source in :attr:`changed`, else ``""``."""
        return " (sources changed since the last run, converted again)" if source in self.changed else ""

    def record(self, row: Mapping[str, Any]) -> None:
        """Add or replace a row (absent columns become ``None``) and rewrite both manifest files."""
        full: dict[str, Any] = dict.fromkeys(self.columns)
        full.update(row)
        self.rows[str(row["source"])] = full
        self.save()

    def save(self) -> None:
        rows = sorted(self.rows.values(), key=lambda r: (str(r.get("patient")), str(r.get("case")), str(r["source"])))
        document = {"settings": self.settings, "summary": self.summary, "rows": rows}
        atomic_write_json(self.folder / MANIFEST_JSON, document)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        atomic_write_text(self.folder / MANIFEST_CSV, buffer.getvalue())


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return "" if value is None else value


def map_cases(
    function: Callable[..., Any], jobs: list[tuple[str, dict[str, Any]]], num_processes: int = 1
) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, function(**kwargs))`` for every job, as jobs finish.

    With ``num_processes > 1`` the jobs run in a ``spawn`` process pool (``function`` must be a module-level
    function and the calling script needs an ``if __name__ == "__main__":`` guard); a worker's exception is
    re-raised here.
    """
    if num_processes <= 1 or len(jobs) <= 1:
        for key, kwargs in jobs:
            yield key, function(**kwargs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(num_processes, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(function, **kwargs): key for key, kwargs in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def progress(index: int, total: int, name: str, status: str, quiet: bool = False) -> None:
    """One line per case on stderr: ``[3/17] LUNG1-003: kept``."""
    if not quiet:
        print(f"[{index}/{total}] {name}: {status}", file=sys.stderr, flush=True)


def write_dataset_json(folder: str | os.PathLike, num_training: int, dataset_name: str, **extra: Any) -> None:
    """nnU-Net's ``generate_dataset_json`` (CT channel, background/tumor labels), moved into place atomically."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    folder = Path(folder)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".dataset-json.tmp-") as tmp:
        generate_dataset_json(
            tmp, CHANNEL_NAMES, LABELS, num_training, ".nii.gz", dataset_name=dataset_name,
            converted_by="nnunet_kd", **extra,
        )
        os.replace(Path(tmp) / "dataset.json", folder / "dataset.json")


def write_patient_splits(
    folder: str | os.PathLike, case_to_patient: Mapping[str, str], num_folds: int = 5, seed: int = 12345
) -> str:
    """Write ``splits_final.json`` grouped by patient; returns a one-line note for the manifest summary."""
    path = Path(folder) / SPLITS_FILE
    try:
        folds = patient_grouped_folds(case_to_patient, num_folds, seed)
    except InputError as error:
        if path.exists():
            path.unlink()
        return f"{SPLITS_FILE} not written: {error}"
    write_splits(path, folds)
    return f"{SPLITS_FILE}: {num_folds} patient-grouped folds over {len(case_to_patient)} case(s)"
