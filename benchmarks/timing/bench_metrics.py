"""Time every per-case metric on one 512×512×300 case pair with several lesions.

Run: ``python benchmarks/timing/bench_metrics.py [--with-io]`` (prints seconds per step and in total; ``--with-io`` also
times one case of ``nnunet_kd evaluate`` from compressed NIfTI files: read, check, score). The reference has six
spherical lesions spread over both lungs; the prediction shifts and resizes them, misses one and adds a false
positive, so every code path (cropping, components, distance transforms) does real work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nnunet_kd.metrics import case_metrics, foreground_mask, hausdorff_distance_95, match_objects, voxel_counts

SHAPE = (300, 512, 512)  # (z, y, x)
SPACING = (2.5, 0.7, 0.7)  # mm, (z, y, x)


def paint_sphere(volume: np.ndarray, centre: tuple[int, int, int], radius_mm: float,
                 spacing: tuple[float, ...]) -> None:
    """Set a sphere of ``radius_mm`` around voxel ``centre`` to 1, touching only its bounding box."""
    half = [int(np.ceil(radius_mm / s)) for s in spacing]
    box = tuple(slice(max(c - h, 0), min(c + h + 1, n)) for c, h, n in zip(centre, half, volume.shape, strict=True))
    grids = np.ogrid[box]
    distance2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    volume[box][distance2 <= radius_mm**2] = 1


def make_case() -> tuple[np.ndarray, np.ndarray]:
    """Reference and prediction label maps ``(z, y, x)`` of :data:`SHAPE`, uint8."""
    reference = np.zeros(SHAPE, dtype=np.uint8)
    prediction = np.zeros(SHAPE, dtype=np.uint8)
    lesions = [((80, 180, 150), 25.0), ((150, 200, 360), 15.0), ((200, 300, 140), 8.0),
               ((120, 320, 380), 30.0), ((240, 250, 330), 5.0), ((60, 260, 400), 12.0)]
    for index, (centre, radius) in enumerate(lesions):
        paint_sphere(reference, centre, radius, SPACING)
        if index == 4:
            continue  # missed lesion
        shifted = (centre[0] + 1, centre[1] + 3, centre[2] - 2)
        paint_sphere(prediction, shifted, radius * 1.1, SPACING)
    paint_sphere(prediction, (100, 350, 250), 6.0, SPACING)  # false positive
    return reference, prediction


def timed(label: str, function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    seconds = time.perf_counter() - start
    print(f"{label:<28s} {seconds:7.3f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="time the full case this many times, report the best")
    parser.add_argument("--with-io", action="store_true", help="also time reading the pair from .nii.gz files")
    args = parser.parse_args()
    reference, prediction = make_case()
    ref, pred = foreground_mask(reference), foreground_mask(prediction)
    print(f"volume {SHAPE} (z, y, x), spacing {SPACING} mm, {int(ref.sum())} reference voxels")
    timed("voxel counts", voxel_counts, ref, pred)
    timed("HD95", hausdorff_distance_95, ref, pred, SPACING)
    timed("object matching + DSC-TP", match_objects, ref, pred)
    best = min(timed("case_metrics (all)", case_metrics, reference, prediction, SPACING) for _ in range(args.repeats))
    print(f"best of {args.repeats}: all metrics for one case in {best:.2f} s")
    if args.with_io:
        time_with_io(reference, prediction)


def time_with_io(reference: np.ndarray, prediction: np.ndarray) -> None:
    """Write the pair as compressed NIfTI and time :func:`nnunet_kd.evaluation.evaluate_case` on it."""
    import SimpleITK as sitk

    from nnunet_kd.evaluation import evaluate_case

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, array in (("ref", reference), ("pred", prediction)):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(tuple(reversed(SPACING)))
            paths.append(Path(folder) / f"{name}.nii.gz")
            sitk.WriteImage(image, str(paths[-1]), useCompression=True)
        timed("evaluate_case (read + all)", evaluate_case, "bench", paths[0], paths[1], None, 0.25)


if __name__ == "__main__":
    main()
