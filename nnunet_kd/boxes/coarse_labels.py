"""Labels made from boxes: filled boxes for the box-supervised baseline teacher (the IJCNN-2026 paper's weak
teacher), or nnU-Net's ignore label inside the boxes for a teacher-free baseline.

Turns a raw dataset into one whose labels come from axial boxes: from voxel labels (``labelsTr``, boxed per slice and
lesion) or from box masks (``boxesTr``, taken as they are). Images are linked, not duplicated.

With ``ignore_inside`` a box says what it knows and no more (nnU-Net's ``documentation/ignore_label.md``): outside
every box (grown in-plane by ``margin_mm``) there is no tumour (0); inside, the voxels carry the ignore label (2,
``dataset.json`` labels ``{"background": 0, "tumor": 1, "ignore": 2}``), which nnU-Net's loss skips. An optional
core rule marks the inner part of each box as tumour: per slice, the ellipse inscribed in the box with its semi-axes
scaled by ``core_fraction`` (off by default). Cases of a labelled ``strong`` dataset can be merged in with their
voxel labels (case names then get ``weak_`` and ``strong_`` prefixes, as in the pseudo-label export).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk

from nnunet_kd.atomic import atomic_path, remove_stale_for
from nnunet_kd.boxes.axial_boxes import axial_box_mask
from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.file_links import LinkMode, place_file
from nnunet_kd.integrity.image_files import read_image
from nnunet_kd.paths import datasets_with_id, read_dataset_json, refuse_writing_into_inputs

LabelSource = Literal["auto", "labels", "boxes"]


IGNORE = 2
IGNORE_LABELS = {"background": 0, "tumor": 1, "ignore": IGNORE}


def ignore_inside_boxes(boxes: np.ndarray, spacing_zyx: tuple[float, ...], margin_mm: float = 0.0,
                        core_fraction: float = 0.0) -> np.ndarray:
    """Labels of one box-only case: 0 outside the boxes grown in-plane by ``margin_mm``, the ignore label inside,
    1 on each box's core (per slice, the inscribed ellipse with semi-axes scaled by ``core_fraction``; 0: none).

    Args:
        boxes: ``(z, y, x)`` 0/1 axial box mask (axial slices along axis 0).
        spacing_zyx: voxel size in mm.
    """
    from scipy import ndimage

    from nnunet_kd.boxes.axial_boxes import axial_boxes_from_label

    inside = boxes > 0
    radius = [int(np.ceil(margin_mm / s)) if margin_mm > 0 else 0 for s in spacing_zyx[1:]]
    if any(radius):
        structure = np.ones((1, 2 * radius[0] + 1, 2 * radius[1] + 1), bool)
        inside = ndimage.binary_dilation(inside, structure)
    labels = np.where(inside, IGNORE, 0).astype(np.uint8)
    if core_fraction > 0:
        for box in axial_boxes_from_label(boxes.astype(np.uint8), 0, merge_per_slice=False):
            rows = np.arange(box.row_min, box.row_max + 1)
            cols = np.arange(box.col_min, box.col_max + 1)
            centre_r, centre_c = (box.row_min + box.row_max) / 2, (box.col_min + box.col_max) / 2
            half_r = core_fraction * (box.row_max - box.row_min + 1) / 2
            half_c = core_fraction * (box.col_max - box.col_min + 1) / 2
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            core = ((rr - centre_r) / half_r) ** 2 + ((cc - centre_c) / half_c) ** 2 <= 1.0
            labels[box.slice_index, rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1][core] = 1
    return labels


def write_coarse_label_dataset(
    source: str | os.PathLike, target: str | os.PathLike, label_source: LabelSource = "auto",
    merge_per_slice: bool = False, link_mode: LinkMode = "hardlink", overwrite: bool = False,
    ignore_inside: bool = False, margin_mm: float = 0.0, core_fraction: float = 0.0,
    strong: str | os.PathLike | None = None,
) -> Path:
    """Write ``target`` (a raw dataset folder) with the images of ``source`` and filled-box labels.

    Args:
        source: raw dataset folder with ``imagesTr`` and ``labelsTr`` and/or ``boxesTr``.
        target: new dataset folder (``$nnUNet_raw/DatasetXXX_Name``).
        label_source: ``labels`` (box each lesion per slice), ``boxes`` (use the box masks), ``auto`` (labels if
            present, else boxes).
        merge_per_slice: with ``labels``: one box per slice around all lesions.
        link_mode: how images get into the new dataset.
        overwrite: replace an existing target and any other dataset with the target's id (never the source).
        ignore_inside: the ignore label inside the boxes, background outside (see the module docstring), instead of
            filled boxes; ``margin_mm`` grows the boxes in-plane first, ``core_fraction`` marks their core tumour.
        strong: a labelled raw dataset merged in with its voxel labels (``ignore_inside`` only).

    Raises:
        InputError, ConfigurationError: bad source files; an existing target or id without ``overwrite``; a target
            that is or holds a source; options out of range; a strong label that already uses the ignore value
            (nothing is changed).
    """
    source, target = Path(source), Path(target)
    if margin_mm < 0 or not 0 <= core_fraction < 1:
        raise ConfigurationError(f"--margin-mm must be >= 0 and --core-fraction in [0, 1), got {margin_mm} and "
                                 f"{core_fraction}")
    if (margin_mm or core_fraction or strong is not None) and not ignore_inside:
        raise ConfigurationError("--margin-mm, --core-fraction and --strong need --ignore-inside")
    dataset_json = read_dataset_json(source)
    ending = dataset_json.get("file_ending", ".nii.gz")
    if label_source == "auto":
        label_source = "labels" if (source / "labelsTr").is_dir() else "boxes"
    label_folder = source / ("labelsTr" if label_source == "labels" else "boxesTr")
    if not label_folder.is_dir():
        raise InputError(f"{source} has no {label_folder.name} folder to make coarse labels from")
    id_match = re.match(r"Dataset(\d{3})_", target.name)
    same_id = datasets_with_id(target.parent, int(id_match.group(1))) if id_match else []
    replaced = sorted({*same_id, *([target] if target.exists() else [])})
    strong_folder = Path(strong) if strong is not None else None
    strong_json = read_dataset_json(strong_folder) if strong_folder is not None else None
    refuse_writing_into_inputs([target, *replaced], [source, strong_folder], "boxes-to-labels")
    if replaced and not overwrite:
        raise ConfigurationError(f"{', '.join(map(str, replaced))} already exists (nnU-Net resolves a dataset id only "
                                 "when one folder has it); pass --overwrite to replace it")
    cases = sorted(p.name[: -len(ending)] for p in label_folder.glob(f"*{ending}"))
    if not cases:
        raise InputError(f"no {ending} files in {label_folder}")
    strong_cases = _strong_label_files(strong_folder, strong_json) if strong_folder is not None else {}
    prefix = "weak_" if strong_cases else ""
    remove_stale_for(target)  # a killed earlier run's hidden temporary folder
    with atomic_path(target) as tmp:
        for case, label_file in strong_cases.items():
            _merge_strong_case(strong_folder, case, label_file, tmp, ending, link_mode)
        for case in cases:
            images = sorted((source / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"))
            if not images:
                raise InputError(f"{case}: no image in {source / 'imagesTr'}")
            for image in images:
                place_file(image, tmp / "imagesTr" / f"{prefix}{image.name}", link_mode)
            label_image = read_image(label_folder / f"{case}{ending}", f"{case}: {label_folder.name}")
            _check_same_grid(case, images[0], label_image, label_folder.name)
            array = sitk.GetArrayFromImage(label_image)
            if label_source == "labels":
                coarse = axial_box_mask(array, merge_per_slice=merge_per_slice)
            else:
                if not set(np.unique(array).tolist()) <= {0, 1}:
                    raise InputError(f"{case}: box mask has values other than 0 and 1")
                coarse = (array > 0).astype(np.uint8)
            if ignore_inside:
                coarse = ignore_inside_boxes(coarse, tuple(reversed(label_image.GetSpacing())), margin_mm,
                                             core_fraction)
            out = sitk.GetImageFromArray(coarse.astype(np.uint8))
            out.CopyInformation(label_image)
            (tmp / "labelsTr").mkdir(exist_ok=True)
            sitk.WriteImage(out, str(tmp / "labelsTr" / f"{prefix}{case}{ending}"), useCompression=True)
        from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

        kind = "ignore label inside the axial boxes" if ignore_inside else "coarse (filled axial box) labels"
        generate_dataset_json(str(tmp), dataset_json["channel_names"],
                              IGNORE_LABELS if ignore_inside else {"background": 0, "tumor": 1},
                              len(cases) + len(strong_cases), ending, dataset_name=target.name,
                              description=f"{kind} made from {source.name}/{label_folder.name}"
                                          + (f" and the voxel labels of {strong_folder.name}" if strong_cases else ""))
    for other in replaced:  # the new dataset is in place: the old ones with its id go
        if other != target:
            shutil.rmtree(other)
    return target


def _strong_label_files(folder: Path, dataset_json: dict) -> dict[str, Path]:
    """``{case: label file}`` of a labelled dataset merged into an ignore-label dataset, every label checked."""
    ending = dataset_json.get("file_ending", ".nii.gz")
    labels = sorted((folder / "labelsTr").glob(f"*{ending}"))
    if not labels:
        raise InputError(f"strong dataset {folder} has no labels in labelsTr")
    cases = {}
    for label_file in labels:
        case = label_file.name[: -len(ending)]
        values = set(np.unique(sitk.GetArrayFromImage(read_image(label_file, f"strong case {case}: label"))).tolist())
        if IGNORE in values:
            raise InputError(f"strong case {case}: its label already uses the value {IGNORE}, the ignore label of "
                             "the new dataset")
        if not values <= {0, 1}:
            raise InputError(f"strong case {case}: label values {sorted(values)}; expected 0 and 1")
        cases[case] = label_file
    return cases


def _merge_strong_case(folder: Path, case: str, label_file: Path, tmp: Path, ending: str, link_mode: LinkMode) -> None:
    images = sorted((folder / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"))
    if not images:
        raise InputError(f"strong case {case}: no image in {folder / 'imagesTr'}")
    for image in images:
        place_file(image, tmp / "imagesTr" / f"strong_{image.name}", link_mode)
    place_file(label_file, tmp / "labelsTr" / f"strong_{case}{ending}", "copy")


def _check_same_grid(case: str, image_file: Path, label: sitk.Image, what: str) -> None:
    """``InputError`` when a box mask or label is not on its image's grid (size, spacing, origin, direction)."""
    from nnunet_kd.boxes.inputs import image_header, same_geometry

    mismatch = same_geometry(image_header(image_file), label)
    if mismatch:
        raise InputError(f"{case}: {what} {mismatch}")
