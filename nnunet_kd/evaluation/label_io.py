"""Read label maps and check that a prediction lies on its reference's grid.

Arrays are returned in SimpleITK order ``(z, y, x)`` with the spacing reversed to match (``(z, y, x)`` in mm).
Every problem is an :class:`~nnunet_kd.errors.InputError` that names the case, so a wrong number is never
computed silently: a non-integer or negative label, a vector image, or a different size/spacing/origin/direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_kd.errors import InputError
from nnunet_kd.integrity.image_files import read_image

#: Geometry tolerances: spacing and origin in mm (absolute), direction cosines (absolute).
SPACING_TOLERANCE_MM = 1e-4
ORIGIN_TOLERANCE_MM = 1e-3
DIRECTION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LabelImage:
    """A label map with its geometry.

    Attributes:
        array: integer labels, ``(z, y, x)``.
        spacing: voxel size in mm, ``(z, y, x)``.
        origin: world position of the first voxel in mm, SimpleITK order ``(x, y, z)``.
        direction: direction cosines, SimpleITK's flat row-major 3×3 (9 values).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]


def integer_labels(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as an integer array; raises :class:`InputError` naming ``what`` for fractional/negative values."""
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all() or not np.array_equal(array, np.round(array)):
            bad = array[~finite] if not finite.all() else array[array != np.round(array)]
            raise InputError(f"{what}: labels must be integers, found {bad.ravel()[0]!r}")
        array = array.astype(np.int64)
    elif not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise InputError(f"{what}: label pixel type {array.dtype} is not an integer type")
    if array.size and array.min() < 0:
        raise InputError(f"{what}: labels must be >= 0, found {int(array.min())}")
    return array


def read_label_image(path: str | Path, what: str) -> LabelImage:
    """Read one label file with SimpleITK; ``what`` names it in errors (e.g. ``"case lung_001 (prediction)"``)."""
    import SimpleITK as sitk

    image = read_image(path, what)  # a cut-off prediction would be scored as if its missing voxels were background
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what}: {path} has {image.GetNumberOfComponentsPerPixel()} components per pixel, "
                         "a label map has one")
    array = integer_labels(sitk.GetArrayFromImage(image), what)
    return LabelImage(
        array=array,
        spacing=tuple(float(s) for s in reversed(image.GetSpacing())),
        origin=tuple(float(o) for o in image.GetOrigin()),
        direction=tuple(float(d) for d in image.GetDirection()),
    )


def check_same_geometry(case: str, reference: LabelImage, prediction: LabelImage) -> None:
    """Raise :class:`InputError` naming ``case`` and the first differing property (size, spacing, origin, direction)."""
    checks = (
        ("size (z, y, x)", reference.array.shape, prediction.array.shape, None),
        ("spacing (z, y, x) mm", reference.spacing, prediction.spacing, SPACING_TOLERANCE_MM),
        ("origin (x, y, z) mm", reference.origin, prediction.origin, ORIGIN_TOLERANCE_MM),
        ("direction", reference.direction, prediction.direction, DIRECTION_TOLERANCE),
    )
    for name, ref_value, pred_value, tolerance in checks:
        if tolerance is None:
            same = tuple(ref_value) == tuple(pred_value)
        else:
            same = len(ref_value) == len(pred_value) and np.allclose(ref_value, pred_value, rtol=0, atol=tolerance)
        if not same:
            raise InputError(
                f"case {case}: prediction and reference differ in {name}: reference {_fmt(ref_value)}, "
                f"prediction {_fmt(pred_value)} (resample the prediction onto the reference grid)"
            )


def _fmt(value: tuple) -> str:
    return "(" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + ")"
