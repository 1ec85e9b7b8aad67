"""Our Dice and IoU agree with nnU-Net's own evaluator on the same NIfTI files (to 1e-6).

nnU-Net's ``compute_metrics`` is called in-process per case (``compute_metrics_on_folder`` would spawn a worker
that re-imports nnU-Net, which costs seconds). nnU-Net gives Dice ``nan`` when reference and prediction are both
empty; so do we (undefined = missing), so those cases are compared as "both nan".
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_kd.evaluation import evaluate_folder


def _write(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((0.7, 0.9, 2.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def test_dice_and_iou_match_nnunet(tmp_path: Path) -> None:
    pytest.importorskip("nnunetv2")
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    rng = np.random.default_rng(0)
    shape = (8, 20, 24)
    cases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for index in range(4):  # random blobs, partly overlapping
        ref = np.zeros(shape, dtype=np.uint8)
        pred = np.zeros(shape, dtype=np.uint8)
        for _ in range(2):
            z, y, x = rng.integers(1, 6), rng.integers(2, 14), rng.integers(2, 18)
            ref[z:z + 2, y:y + 5, x:x + 4] = 1
            pred[z:z + 2, y + rng.integers(-2, 3):y + 5, x:x + rng.integers(2, 7)] = 1
        cases[f"lung_{index:03d}"] = (ref, pred)
    empty = np.zeros(shape, dtype=np.uint8)
    cases["lung_100"] = (cases["lung_000"][0], empty)  # empty prediction: Dice 0 in both
    cases["lung_101"] = (empty, cases["lung_001"][1])  # empty reference: Dice 0 in both
    cases["lung_102"] = (empty, empty)  # both empty: nan in both
    for case, (ref, pred) in cases.items():
        _write(tmp_path / "ref" / f"{case}.nii.gz", ref)
        _write(tmp_path / "pred" / f"{case}.nii.gz", pred)

    ours = {row["case"]: row for row in evaluate_folder("m", tmp_path / "pred", tmp_path / "ref").rows}
    assert set(ours) == set(cases)
    compared = 0
    for case in cases:
        theirs = compute_metrics(str(tmp_path / "ref" / f"{case}.nii.gz"), str(tmp_path / "pred" / f"{case}.nii.gz"),
                                 SimpleITKIO(), [1])["metrics"][1]
        for ours_key, their_key in (("dice", "Dice"), ("iou", "IoU")):
            if math.isnan(theirs[their_key]):
                assert math.isnan(ours[case][ours_key]), case
            else:
                assert ours[case][ours_key] == pytest.approx(theirs[their_key], abs=1e-6), case
                compared += 1
        assert (ours[case]["tp"], ours[case]["fp"], ours[case]["fn"]) == (theirs["TP"], theirs["FP"], theirs["FN"])
    assert compared == 2 * 6  # all cases but the both-empty one have a defined Dice and IoU
