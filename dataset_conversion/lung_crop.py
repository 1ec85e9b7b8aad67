"""Crop CT volumes to the lungs' bounding box (plus a margin in mm), as the mixed-supervision paper does.

The lung mask only defines a bounding box; it never masks voxels out: juxtapleural tumours lie outside lung masks
(on a real Lung-PET-CT-Dx scan only 6 % of the tumour was inside a threshold lung mask, 100 % inside its box).
Image, labels and box masks are cut with the same index ranges, so they keep one geometry.

Lung masks come from lungmask's R231 network when its weights are on disk (a file given explicitly, or
``unet_r231-d5d2fc3d.pth`` in the torch hub cache); nothing is ever downloaded. Otherwise a classical mask is
used: body = largest component above -500 HU, air below -320 HU inside it, the two largest air components
above a minimum volume, closed and hole-filled per slice (on a grid subsampled to about 2.5 mm in-plane).

:func:`lung_side_crops` gives one crop per lung instead, as the paper's student input: sides from lungmask's
labels (1 right, 2 left) or, for the classical mask, from the patient x of its two components.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from nnunet_kd.errors import ConfigurationError

if TYPE_CHECKING:
    import SimpleITK as sitk

R231_FILE = "unet_r231-d5d2fc3d.pth"
R231_URL = "https://github.com/JoHof/lungmask/releases/download/v0.0/unet_r231-d5d2fc3d.pth"
METHODS = ("auto", "lungmask", "classical")


@dataclass(frozen=True)
class LungCropSettings:
    """How to crop: ``method`` "auto" (lungmask if weights are on disk, else classical), "lungmask" or "classical"."""

    margin_mm: float = 15.0
    method: str = "auto"
    lungmask_weights: str | None = None
    min_lung_volume_ml: float = 100.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigurationError(f"lung crop method '{self.method}' is unknown; use one of {', '.join(METHODS)}")
        if self.margin_mm < 0:
            raise ConfigurationError(f"lung crop margin must be >= 0 mm, got {self.margin_mm}")


@dataclass(frozen=True)
class CropResult:
    """Index ranges ``(z, y, x)`` (half-open) of the crop, the method that produced the mask, and lung voxels."""

    bounds: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    method: str
    lung_voxels: int


def classical_lung_mask(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], min_lung_volume_ml: float = 100.0,
    working_resolution_mm: float = 2.5,
) -> np.ndarray:
    """Binary ``uint8`` lung mask of a ``(z, y, x)`` HU volume from thresholds and connected components.

    Fine in-plane grids are subsampled to about ``working_resolution_mm`` first (the mask only feeds a bounding
    box with a margin of several mm); the result is repeated back to the input shape.
    """
    hu = np.asarray(hu)
    stride = max(1, int(working_resolution_mm // min(spacing_zyx[1:])))
    coarse = np.maximum(hu[:, ::stride, ::stride].astype(np.float32), -1024.0)
    coarse_spacing = (spacing_zyx[0], spacing_zyx[1] * stride, spacing_zyx[2] * stride)
    lungs = _threshold_lungs(coarse, coarse_spacing, min_lung_volume_ml)
    if stride > 1:
        lungs = np.repeat(np.repeat(lungs, stride, axis=1), stride, axis=2)[:, : hu.shape[1], : hu.shape[2]]
    return np.ascontiguousarray(lungs)


def _threshold_lungs(hu: np.ndarray, spacing_zyx: tuple[float, float, float], min_lung_volume_ml: float) -> np.ndarray:
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    body_components, count = ndimage.label(hu > -500)
    if count == 0:
        return np.zeros(hu.shape, np.uint8)
    sizes = np.bincount(body_components.ravel())
    sizes[0] = 0
    body = body_components == int(np.argmax(sizes))
    body = np.stack([ndimage.binary_fill_holes(plane) for plane in body])
    air = (hu < -320) & body
    air = ndimage.binary_opening(air, structure=np.ones((1, 3, 3), bool))
    air_components, count = ndimage.label(air)
    if count == 0:
        return np.zeros(hu.shape, np.uint8)
    sizes = np.bincount(air_components.ravel())
    sizes[0] = 0
    largest = [int(i) for i in np.argsort(sizes)[::-1][:2] if sizes[i] * voxel_ml >= min_lung_volume_ml]
    lungs = np.isin(air_components, largest)
    radius = max(1, int(round(5.0 / min(spacing_zyx[1:]))))
    in_plane = np.zeros((1, 2 * radius + 1, 2 * radius + 1), bool)
    in_plane[0] = True
    lungs = ndimage.binary_closing(lungs, structure=in_plane)
    lungs = np.stack([ndimage.binary_fill_holes(plane) for plane in lungs])
    return lungs.astype(np.uint8)


def find_r231_weights(explicit: str | os.PathLike | None = None) -> Path | None:
    """The R231 weights file: ``explicit`` (must exist) or the torch hub cache copy; ``None`` when absent."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"lungmask weights file {path} does not exist")
        return path
    cached = torch_hub_dir() / "checkpoints" / R231_FILE
    return cached if cached.is_file() else None


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        torch_home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(os.path.expanduser(torch_home)) / "hub"


def lungmask_lung_labels(image: sitk.Image, weights: Path) -> np.ndarray:
    """lungmask R231 labels (0 background, 1 right lung, 2 left lung), same shape as the image array."""
    try:
        from lungmask import LMInferer
    except ImportError as error:
        raise ConfigurationError(
            "lungmask is not installed (pip install lungmask), or use --crop-method classical"
        ) from error
    inferer = LMInferer(modelname="R231", modelpath=str(weights), force_cpu=False, tqdm_disable=True)
    return np.asarray(inferer.apply(image)).astype(np.uint8)


def _weights_for(settings: LungCropSettings) -> Path | None:
    """The R231 weights to use, ``None`` for the classical mask; raises when lungmask is required but absent."""
    if settings.method == "classical":
        return None
    weights = find_r231_weights(settings.lungmask_weights)
    if weights is None and settings.method == "lungmask":
        raise ConfigurationError(
            f"lungmask R231 weights not found (no --lungmask-weights file, nothing at "
            f"$TORCH_HOME/hub/checkpoints/{R231_FILE}); no download is attempted. Fetch {R231_URL} on a "
            "machine with network access and pass it with --lungmask-weights, or use --crop-method classical"
        )
    return weights


def lung_mask(image: sitk.Image, settings: LungCropSettings) -> tuple[np.ndarray, str]:
    """Binary lung mask of a ``sitk.Image`` (HU) and the method used.

    Raises:
        ConfigurationError: ``method="lungmask"`` without weights on disk (no download is attempted).
    """
    import SimpleITK as sitk

    weights = _weights_for(settings)
    if weights is not None:
        return (lungmask_lung_labels(image, weights) > 0).astype(np.uint8), "lungmask-R231"
    spacing_zyx = tuple(reversed(image.GetSpacing()))
    return classical_lung_mask(sitk.GetArrayViewFromImage(image), spacing_zyx, settings.min_lung_volume_ml), "classical"


def split_sides(mask: np.ndarray, column_x_mm: np.ndarray) -> np.ndarray:
    """Label a binary lung mask 1 (right lung) / 2 (left lung) from patient x (LPS: +x is the patient's left).

    The two largest components are the lungs when the smaller has at least a quarter of the larger's volume;
    otherwise (lungs merged through the anterior junction, or one lung) voxels are split at the mask's mean x.
    ``column_x_mm`` is the patient x of each array column.
    """
    mask = np.asarray(mask) > 0
    labels = np.zeros(mask.shape, np.uint8)
    components, count = ndimage.label(mask)
    if count >= 2:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        first, second = (int(i) for i in np.argsort(sizes)[::-1][:2])
        if sizes[second] >= 0.25 * sizes[first]:
            mean_x = {c: float(column_x_mm[np.nonzero(components == c)[2]].mean()) for c in (first, second)}
            right, left = sorted((first, second), key=lambda c: mean_x[c])
            labels[components == right] = 1
            labels[components == left] = 2
            return labels
    if mask.any():
        columns_x = column_x_mm[np.nonzero(mask)[2]]
        side_of_column = np.where(column_x_mm < columns_x.mean(), 1, 2).astype(np.uint8)
        labels[mask] = np.broadcast_to(side_of_column, mask.shape)[mask]
    return labels


@dataclass(frozen=True)
class SideCrop:
    """One lung's crop: ``side`` "right" or "left", half-open ``(z, y, x)`` index ranges, lung voxels, method."""

    side: str
    bounds: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    lung_voxels: int
    method: str


def lung_side_crops(image: sitk.Image, settings: LungCropSettings) -> list[SideCrop]:
    """One crop per lung (right first), each the lung's bounding box plus the margin, as the paper's student input.

    lungmask R231 gives the sides directly; the classical mask is split with :func:`split_sides`.
    """

    weights = _weights_for(settings)
    if weights is not None:
        labels, method = lungmask_lung_labels(image, weights), "lungmask-R231"
    else:
        mask, method = lung_mask(image, settings)
        columns = np.arange(image.GetSize()[0], dtype=float)
        column_x_mm = image.GetOrigin()[0] + image.GetDirection()[0] * image.GetSpacing()[0] * columns
        labels = split_sides(mask, column_x_mm)
    spacing_zyx = tuple(reversed(image.GetSpacing()))
    crops = []
    for value, side in ((1, "right"), (2, "left")):
        bounds = crop_bounds(labels == value, spacing_zyx, settings.margin_mm)
        if bounds is not None:
            crops.append(SideCrop(side, bounds, int(np.sum(labels == value)), method))
    return crops


def crop_bounds(
    mask: np.ndarray, spacing_zyx: tuple[float, float, float], margin_mm: float
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """Half-open ``(start, stop)`` per axis of the mask's bounding box grown by ``margin_mm``; ``None`` if empty."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return None
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=other))
        grow = int(math.ceil(margin_mm / spacing_zyx[axis] - 1e-6))
        bounds.append((max(0, int(present[0]) - grow), min(mask.shape[axis], int(present[-1]) + 1 + grow)))
    return tuple(bounds)  # type: ignore[return-value]


def lung_crop(image: sitk.Image, settings: LungCropSettings) -> CropResult | None:
    """Crop ranges for ``image`` (``None`` when no lungs were found: keep the full volume)."""
    mask, method = lung_mask(image, settings)
    bounds = crop_bounds(mask, tuple(reversed(image.GetSpacing())), settings.margin_mm)
    if bounds is None:
        return None
    return CropResult(bounds, method, int(mask.sum()))


def apply_crop(image: sitk.Image, bounds: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]) -> sitk.Image:
    """Cut a ``sitk.Image`` to ``(z, y, x)`` index ranges; the origin moves so world positions are kept."""
    (z0, z1), (y0, y1), (x0, x1) = bounds
    return image[x0:x1, y0:y1, z0:z1]
