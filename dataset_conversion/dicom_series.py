"""Index DICOM files by series, check a series' slice geometry and read it as a SimpleITK image.

Slices are ordered by their ``ImagePositionPatient`` projected on the slice normal (the cross product of the two
``ImageOrientationPatient`` cosines), never by file name or instance number. ``PixelSpacing`` is (row spacing,
column spacing), i.e. (y, x). Arrays follow SimpleITK: ``(z, y, x)`` with z ascending along the normal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import SimpleITK as sitk

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
GAP_FACTOR = 1.5  # a step larger than this times the modal step is a break (missing slices or stacked scans)


@dataclass(frozen=True)
class SliceHeader:
    """What is needed of one image file to place it in space (pixels are read later)."""

    path: Path
    sop_instance_uid: str
    position: tuple[float, float, float]
    instance_number: int | None = None
    acquisition_number: int | None = None


@dataclass
class DicomSeries:
    """One series: series-level attributes from its first file plus the per-file headers."""

    series_instance_uid: str
    study_instance_uid: str
    patient_id: str
    frame_of_reference_uid: str
    modality: str
    sop_class_uid: str
    series_description: str
    series_number: int | None
    study_date: str
    image_type: tuple[str, ...]
    samples_per_pixel: int
    photometric_interpretation: str
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]  # (row spacing = y, column spacing = x), mm
    orientation: tuple[float, ...]  # ImageOrientationPatient: row cosine (x direction), column cosine (y direction)
    slices: list[SliceHeader] = field(default_factory=list)
    consistent: bool = True  # False when files disagree on size, spacing or orientation
    other_files: list[Path] = field(default_factory=list)  # files without image geometry (e.g. RTSTRUCT, SEG)

    @property
    def normal(self) -> np.ndarray:
        row, col = np.asarray(self.orientation[:3], float), np.asarray(self.orientation[3:], float)
        return np.cross(row, col)

    @property
    def is_axial(self) -> bool:
        return bool(abs(self.normal[2]) > 0.9)

    def sorted_slices(self) -> list[SliceHeader]:
        """Slices in ascending order along the normal."""
        normal = self.normal
        return sorted(self.slices, key=lambda s: float(np.dot(s.position, normal)))

    def slice_offsets(self) -> np.ndarray:
        """Ascending positions (mm) of the slices along the normal."""
        normal = self.normal
        return np.sort(np.array([float(np.dot(s.position, normal)) for s in self.slices]))

    @property
    def files(self) -> list[Path]:
        return [s.path for s in self.slices] + list(self.other_files)


@dataclass(frozen=True)
class SliceSpacing:
    """Result of :func:`check_slice_spacing`: the modal step and, when the stack is not regular, why."""

    step_mm: float
    z_length_mm: float  # (last - first) + step: the extent covered by the slices
    problem: str | None = None


def _text(ds, keyword: str, default: str = "") -> str:
    value = ds.get(keyword, default)
    return default if value is None else str(value).strip()


def _int_or_none(ds, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return None if value in (None, "") else int(float(value))
    except (TypeError, ValueError):
        return None


def iter_dicom_files(root: str | os.PathLike) -> Iterator[Path]:
    """Files under ``root`` that look like DICOM (``*.dcm`` or no suffix), skipping hidden names; sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.lower().endswith(".dcm") or "." not in name:
                yield Path(dirpath) / name


def scan_series(files: Iterable[str | os.PathLike]) -> list[DicomSeries]:
    """Read the headers (no pixels) of ``files`` and group them by SeriesInstanceUID; unreadable files are skipped.

    Files without ``ImagePositionPatient`` (RTSTRUCT, SEG, reports) are kept in ``other_files`` of their series.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, DicomSeries] = {}
    for file in files:
        path = Path(file)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, AttributeError, EOFError):
            continue
        uid = _text(ds, "SeriesInstanceUID")
        if not uid:
            continue
        entry = series.get(uid)
        position = ds.get("ImagePositionPatient")
        orientation = ds.get("ImageOrientationPatient")
        spacing = ds.get("PixelSpacing")
        if entry is None:
            entry = DicomSeries(
                series_instance_uid=uid,
                study_instance_uid=_text(ds, "StudyInstanceUID"),
                patient_id=_text(ds, "PatientID"),
                frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
                modality=_text(ds, "Modality").upper(),
                sop_class_uid=_text(ds, "SOPClassUID"),
                series_description=_text(ds, "SeriesDescription"),
                series_number=_int_or_none(ds, "SeriesNumber"),
                study_date=_text(ds, "StudyDate"),
                image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or ())),
                samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
                photometric_interpretation=_text(ds, "PhotometricInterpretation").upper(),
                rows=int(ds.get("Rows", 0) or 0),
                columns=int(ds.get("Columns", 0) or 0),
                pixel_spacing=tuple(float(v) for v in spacing) if spacing else (0.0, 0.0),
                orientation=tuple(float(v) for v in orientation) if orientation else (),
            )
            series[uid] = entry
        if position is None or orientation is None or not spacing:
            entry.other_files.append(path)
            continue
        if not entry.orientation:
            entry.orientation = tuple(float(v) for v in orientation)
            entry.pixel_spacing = tuple(float(v) for v in spacing)
        same = (
            int(ds.get("Rows", 0) or 0) == entry.rows
            and int(ds.get("Columns", 0) or 0) == entry.columns
            and np.allclose([float(v) for v in spacing], entry.pixel_spacing, atol=1e-4)
            and np.allclose([float(v) for v in orientation], entry.orientation, atol=1e-4)
        )
        entry.consistent = entry.consistent and same
        entry.slices.append(
            SliceHeader(
                path=path,
                sop_instance_uid=_text(ds, "SOPInstanceUID"),
                position=tuple(float(v) for v in position),
                instance_number=_int_or_none(ds, "InstanceNumber"),
                acquisition_number=_int_or_none(ds, "AcquisitionNumber"),
            )
        )
    return sorted(
        series.values(), key=lambda s: (s.patient_id, s.study_date, s.series_number or 0, s.series_instance_uid)
    )


def check_slice_spacing(offsets: np.ndarray, gap_factor: float = GAP_FACTOR) -> SliceSpacing:
    """Check that sorted slice offsets form one regular stack.

    Problems reported: duplicate positions (several scans stacked in one series), steps larger than
    ``gap_factor`` times the modal step (missing slices, or scans of different regions concatenated), and other
    irregular steps (more than 10 % from the modal step).
    """
    offsets = np.sort(np.asarray(offsets, dtype=float))
    if offsets.size < 2:
        return SliceSpacing(0.0, 0.0, f"only {offsets.size} slice(s)")
    steps = np.diff(offsets)
    duplicates = int(np.sum(steps < 1e-3))
    positive = np.round(steps[steps >= 1e-3], 2)
    if positive.size == 0:
        return SliceSpacing(0.0, 0.0, "all slices at the same position")
    values, counts = np.unique(positive, return_counts=True)
    step = float(values[np.argmax(counts)])
    z_length = float(offsets[-1] - offsets[0] + step)
    if duplicates:
        return SliceSpacing(step, z_length, f"stacked/multi-scan series: {duplicates} duplicated slice position(s)")
    large = steps > gap_factor * step
    if large.any():
        where = int(np.argmax(large))
        return SliceSpacing(
            step,
            z_length,
            f"irregular slice spacing: gap of {steps[where]:.2f} mm after position {offsets[where]:.2f} mm "
            f"(modal step {step:.2f} mm; missing slices or stacked scans)",
        )
    irregular = np.abs(steps - step) > 0.1 * step + 1e-3
    if irregular.any():
        where = int(np.argmax(irregular))
        return SliceSpacing(
            step, z_length, f"irregular slice spacing: step {steps[where]:.2f} mm vs modal step {step:.2f} mm"
        )
    return SliceSpacing(step, z_length, None)


def series_direction(series: DicomSeries) -> np.ndarray:
    """3×3 direction matrix whose columns are the x (row cosine), y (column cosine) and z (normal) axes."""
    row = np.asarray(series.orientation[:3], float)
    col = np.asarray(series.orientation[3:], float)
    return np.stack([row, col, np.cross(row, col)], axis=1)


def read_series_volume(series: DicomSeries, min_value: float | None = -1024.0) -> np.ndarray:
    """Rescaled int16 pixels ``(z, y, x)`` of every slice, z ascending along the normal.

    Values below ``min_value`` (padding outside the field of view, e.g. -2048 or -3024) are raised to it;
    ``None`` keeps them.
    """
    import pydicom

    planes = []
    for header in series.sorted_slices():
        ds = pydicom.dcmread(header.path)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        planes.append(ds.pixel_array.astype(np.float32) * slope + intercept)
    volume = np.stack(planes)
    if min_value is not None:
        np.maximum(volume, min_value, out=volume)
    return np.clip(np.rint(volume), -32768, 32767).astype(np.int16)


def image_from_volume(series: DicomSeries, volume: np.ndarray, step_mm: float) -> sitk.Image:
    """A ``sitk.Image`` on the series' grid: origin at its first slice, spacing (x, y, ``step_mm``), its direction."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(tuple(float(v) for v in series.sorted_slices()[0].position))
    image.SetSpacing((series.pixel_spacing[1], series.pixel_spacing[0], step_mm or 1.0))
    image.SetDirection(tuple(float(v) for v in series_direction(series).ravel()))
    return image


def read_series_image(series: DicomSeries, min_value: float | None = -1024.0) -> sitk.Image:
    """Read a (checked, regular) series into a ``sitk.Image`` of int16 rescaled values.

    Origin is the position of the first slice along the normal, spacing is (x, y, modal step), direction is
    built from ``ImageOrientationPatient``.
    """
    step = check_slice_spacing(series.slice_offsets()).step_mm
    return image_from_volume(series, read_series_volume(series, min_value), step)


def regular_grid_indices(offsets: np.ndarray, step_mm: float, tolerance: float = 0.1) -> np.ndarray | None:
    """Index of each (sorted) slice on the regular grid of ``step_mm`` that starts at the first slice.

    ``None`` unless the only irregularity is missing slices: every slice must lie within ``tolerance`` steps of a
    grid position, and no two slices may share one.
    """
    offsets = np.sort(np.asarray(offsets, float))
    if step_mm <= 0:
        return None
    positions = (offsets - offsets[0]) / step_mm
    indices = np.rint(positions).astype(int)
    if np.any(np.abs(positions - indices) > tolerance) or np.any(np.diff(indices) < 1):
        return None
    return indices


def fill_missing_slices(volume: np.ndarray, grid_indices: np.ndarray, interpolate: bool) -> np.ndarray:
    """Put slices at their grid indices and fill the missing ones between neighbours.

    ``interpolate=True`` blends the two neighbours linearly (images); ``False`` copies the nearer one (labels,
    the lower one on ties).
    """
    grid_indices = np.asarray(grid_indices)
    filled = np.empty((int(grid_indices[-1]) + 1, *volume.shape[1:]), dtype=volume.dtype)
    filled[grid_indices] = volume
    for missing in sorted(set(range(filled.shape[0])) - set(grid_indices.tolist())):
        after = int(np.searchsorted(grid_indices, missing))
        low, high = int(grid_indices[after - 1]), int(grid_indices[after])
        weight = (missing - low) / (high - low)
        if interpolate:
            blend = (1 - weight) * filled[low].astype(np.float32) + weight * filled[high].astype(np.float32)
            filled[missing] = np.rint(blend).astype(volume.dtype)
        else:
            filled[missing] = filled[low] if weight <= 0.5 else filled[high]
    return filled


def pixel_to_physical(series: DicomSeries, header: SliceHeader, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Patient coordinates (mm, N×3) of pixel centres (row, column) on one slice of ``series``."""
    row_cosine = np.asarray(series.orientation[:3], float)
    col_cosine = np.asarray(series.orientation[3:], float)
    rows = np.asarray(rows, float)[:, None]
    cols = np.asarray(cols, float)[:, None]
    row_spacing, col_spacing = series.pixel_spacing
    return np.asarray(header.position, float) + cols * col_spacing * row_cosine + rows * row_spacing * col_cosine
