"""HD95 in mm: shifted cubes with anisotropic spacing (worked out by hand), spheres, brute force, empty masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from nnunet_kd.metrics import directed_surface_distances, hausdorff_distance_95, surface

SPACING = (2.5, 0.7, 1.3)  # (z, y, x) mm, deliberately different on every axis


def _cube(shape: tuple[int, int, int], start: tuple[int, int, int], side: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + side) for s in start)] = True
    return mask


# Hand derivation for a cube of side n = 10 shifted by k voxels along one axis with spacing s on that axis:
# every surface voxel of one cube is at most k·s from the other cube's surface (walk straight back along the
# shift axis onto the other cube's face or side wall), and the whole far face, n² = 100 of the 10³ − 8³ = 488
# surface voxels (20 %), is exactly k·s away. With more than 5 % of the distances at the maximum, the 95th
# percentile is the maximum: HD95 = k·s in both directions.
@pytest.mark.parametrize(
    ("axis", "shift", "expected_mm"),
    [(0, 2, 2 * 2.5), (2, 3, 3 * 1.3), (1, 4, 4 * 0.7)],
)
def test_shifted_cube_hd95_is_shift_times_spacing(axis: int, shift: int, expected_mm: float) -> None:
    shape = (24, 24, 24)
    reference = _cube(shape, (3, 3, 3), 10)
    start = [3, 3, 3]
    start[axis] += shift
    prediction = _cube(shape, tuple(start), 10)
    assert hausdorff_distance_95(reference, prediction, SPACING) == pytest.approx(expected_mm)
    assert hausdorff_distance_95(prediction, reference, SPACING) == pytest.approx(expected_mm)  # symmetric


def test_concentric_spheres_hd95_is_radius_difference() -> None:
    # spacing (2, 1, 1) mm; radii 12 mm and 6 mm: every surface point is ≈ 6 mm from the other surface, up to the
    # voxel discretisation (surface voxel centres sit within half a voxel diagonal of the ideal sphere).
    spacing = (2.0, 1.0, 1.0)
    z, y, x = np.ogrid[:20, :40, :40]
    distance = np.sqrt(((z - 10) * 2.0) ** 2 + (y - 20.0) ** 2 + (x - 20.0) ** 2)
    outer, inner = distance <= 12.0, distance <= 6.0
    assert hausdorff_distance_95(outer, inner, spacing) == pytest.approx(6.0, abs=1.5)
    # Dice of nested spheres: 2 |inner| / (|inner| + |outer|) = 2·6³ / (6³ + 12³) = 432 / 1944 = 0.2222
    dice = 2 * inner.sum() / (inner.sum() + outer.sum())
    assert dice == pytest.approx(432 / 1944, abs=0.02)


def _brute_force_surface(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    inner = np.ones_like(mask)
    for axis in range(3):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~inner


def _brute_force_hd95(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    pa = np.argwhere(_brute_force_surface(a)) * np.asarray(spacing)
    pb = np.argwhere(_brute_force_surface(b)) * np.asarray(spacing)
    pairwise = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))


def test_random_blobs_match_brute_force_including_the_image_border() -> None:
    rng = np.random.default_rng(7)
    for _ in range(3):
        a = ndimage.gaussian_filter(rng.random((12, 14, 16)), 1.5) > 0.5
        b = ndimage.gaussian_filter(rng.random((12, 14, 16)), 1.5) > 0.5
        assert a.any() and b.any()
        assert hausdorff_distance_95(a, b, SPACING) == pytest.approx(_brute_force_hd95(a, b, SPACING))


def test_distances_equal_the_distance_transform() -> None:
    rng = np.random.default_rng(3)
    a = ndimage.gaussian_filter(rng.random((10, 12, 12)), 1.2) > 0.55
    b = ndimage.gaussian_filter(rng.random((10, 12, 12)), 1.2) > 0.55
    a_to_b, b_to_a = directed_surface_distances(a, b, SPACING)
    edt_to_b = ndimage.distance_transform_edt(~surface(b), sampling=SPACING)
    edt_to_a = ndimage.distance_transform_edt(~surface(a), sampling=SPACING)
    np.testing.assert_allclose(np.sort(a_to_b), np.sort(edt_to_b[surface(a)]))
    np.testing.assert_allclose(np.sort(b_to_a), np.sort(edt_to_a[surface(b)]))


def test_surface_of_a_cube_is_its_shell() -> None:
    shell = surface(_cube((8, 8, 8), (1, 1, 1), 5))
    assert shell.sum() == 5**3 - 3**3  # 125 − 27 interior voxels


def test_empty_mask_gives_nan_not_zero() -> None:
    cube = _cube((6, 6, 6), (1, 1, 1), 3)
    empty = np.zeros_like(cube)
    assert math.isnan(hausdorff_distance_95(cube, empty, SPACING))
    assert math.isnan(hausdorff_distance_95(empty, cube, SPACING))
    assert math.isnan(hausdorff_distance_95(empty, empty, SPACING))
    with pytest.raises(ValueError):
        directed_surface_distances(cube, empty, SPACING)
