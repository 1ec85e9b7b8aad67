"""Box-guided prediction on a folder: check the box masks, run nnU-Net's predictor, optionally constrain.

Prediction itself is ``nnUNetv2_predict ... -prev_stage_predictions <boxes>`` (nnU-Net's cascade input path, no
plugin code); this module adds the input checks before it and the box constraint after it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_kd.atomic import atomic_path
from nnunet_kd.boxes.constraint import ConstraintReport, constrain_to_boxes
from nnunet_kd.boxes.inputs import image_cases, image_header, require_valid_box_masks, same_geometry
from nnunet_kd.errors import ConfigurationError, InputError, NnunetKdError
from nnunet_kd.integrity.image_files import check_image_file
from nnunet_kd.paths import refuse_writing_into_inputs


def constrain_folder(
    predictions: str | os.PathLike, boxes: str | os.PathLike, output: str | os.PathLike, margin_mm: float,
    file_ending: str = ".nii.gz", in_place: bool = False,
) -> dict[str, ConstraintReport]:
    """Apply :func:`constrain_to_boxes` to every prediction in a folder.

    Every input is checked (whole files, a box mask per prediction on the same grid) before the first case is
    written. ``output`` must not be one of the input folders unless ``in_place`` (for a command that constrains the
    predictions it has just written itself).

    Raises:
        ConfigurationError: a negative margin, or the output is an input folder.
        InputError: no prediction, a missing, damaged or misaligned box mask, a damaged prediction.
    """
    if margin_mm < 0:
        raise ConfigurationError(f"--margin-mm must be >= 0, got {margin_mm}")
    predictions, boxes, output = Path(predictions), Path(boxes), Path(output)
    if not in_place:
        refuse_writing_into_inputs([output], [predictions, boxes], "constrain-to-boxes")
    files = sorted(predictions.glob(f"*{file_ending}"))
    if not files:
        raise InputError(f"no {file_ending} prediction in {predictions}" + (
            "" if predictions.is_dir() else " (the folder does not exist)"))
    reports: dict[str, ConstraintReport] = {}
    pairs = []
    for prediction_file in files:  # every input checked before writing
        case = prediction_file.name[: -len(file_ending)]
        box_file = boxes / prediction_file.name
        if not box_file.is_file():
            raise InputError(f"{case}: box mask {box_file} is missing")
        check_image_file(prediction_file, f"{case}: prediction")
        check_image_file(box_file, f"{case}: box mask")
        mismatch = same_geometry(image_header(prediction_file), image_header(box_file))
        if mismatch:
            raise InputError(f"{case}: box mask {mismatch.replace('image', 'prediction')}")
        pairs.append((case, prediction_file, box_file))
    output.mkdir(parents=True, exist_ok=True)
    for case, prediction_file, box_file in pairs:
        prediction, box = sitk.ReadImage(str(prediction_file)), sitk.ReadImage(str(box_file))  # checked above
        seg, report = constrain_to_boxes(sitk.GetArrayFromImage(prediction), sitk.GetArrayFromImage(box),
                                         tuple(reversed(prediction.GetSpacing())), margin_mm)
        constrained = sitk.GetImageFromArray(seg.astype(np.uint8))
        constrained.CopyInformation(prediction)
        with atomic_path(output / prediction_file.name) as tmp:
            sitk.WriteImage(constrained, str(tmp), useCompression=True)
        reports[case] = report
    return reports


def summarize_constraint(reports: dict[str, ConstraintReport]) -> str:
    empty = sum(r.empty_boxes for r in reports.values())
    boxes = sum(r.num_boxes for r in reports.values())
    removed = sum(r.removed_voxels for r in reports.values())
    line = f"box constraint: removed {removed} voxels outside the boxes in {len(reports)} case(s)"
    if empty:
        cases = [c for c, r in reports.items() if r.empty_boxes]
        line += f"; WARNING: {empty} of {boxes} boxes have no predicted tumour ({', '.join(cases[:10])})"
    return line


def predict_with_boxes(
    images: str | os.PathLike, boxes: str | os.PathLike, output: str | os.PathLike, dataset: str,
    configuration: str, trainer: str, folds: Sequence[str], plans: str = "nnUNetPlans",
    constrain_margin_mm: float | None = None, extra_args: Sequence[str] = (), file_ending: str = ".nii.gz",
) -> dict[str, ConstraintReport] | None:
    """Check box masks, predict with ``nnUNetv2_predict -prev_stage_predictions``, then optionally constrain.

    Raises:
        InputError: a case's box mask is missing, on another grid, or not binary (nothing is predicted).
        NnunetKdError: nnU-Net's prediction failed.
    """
    require_valid_box_masks(images, boxes, file_ending)
    command = [str(Path(sys.executable).parent / "nnUNetv2_predict"), "-i", str(images), "-o", str(output),
               "-d", str(dataset), "-c", configuration, "-tr", trainer, "-p", plans, "-f", *map(str, folds),
               "-prev_stage_predictions", str(boxes), *extra_args]
    result = subprocess.run(command)
    if result.returncode != 0:
        raise NnunetKdError(f"nnUNetv2_predict failed (exit {result.returncode}): {' '.join(command)}")
    if constrain_margin_mm is None:
        return None
    expected = set(image_cases(images, file_ending))
    written = {p.name[: -len(file_ending)] for p in Path(output).glob(f"*{file_ending}")}
    if expected - written:
        raise NnunetKdError(f"nnUNetv2_predict wrote no prediction for {sorted(expected - written)}")
    return constrain_folder(output, boxes, output, constrain_margin_mm, file_ending, in_place=True)
