"""Coarse labels for the box-supervised baseline teacher (the IJCNN-2026 paper's weak teacher).

Turns a raw dataset into one whose labels are filled axial boxes: from voxel labels (``labelsTr``, boxed per
slice and lesion) or from box masks (``boxesTr``, taken as they are). Images are linked, not duplicated.
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


def write_coarse_label_dataset(
    source: str | os.PathLike, target: str | os.PathLike, label_source: LabelSource = "auto",
    merge_per_slice: bool = False, link_mode: LinkMode = "hardlink", overwrite: bool = False,
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

    Raises:
        InputError, ConfigurationError: bad source files; an existing target or id without ``overwrite``; a target
            that is or holds the source (nothing is changed).
    """
    source, target = Path(source), Path(target)
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
    refuse_writing_into_inputs([target, *replaced], [source], "boxes-to-labels")
    if replaced and not overwrite:
        raise ConfigurationError(f"{', '.join(map(str, replaced))} already exists (nnU-Net resolves a dataset id only "
                                 "when one folder has it); pass --overwrite to replace it")
    cases = sorted(p.name[: -len(ending)] for p in label_folder.glob(f"*{ending}"))
    if not cases:
        raise InputError(f"no {ending} files in {label_folder}")
    remove_stale_for(target)  # a killed earlier run's hidden temporary folder
    with atomic_path(target) as tmp:
        for case in cases:
            images = sorted((source / "imagesTr").glob(f"{case}_[0-9][0-9][0-9][0-9]{ending}"))
            if not images:
                raise InputError(f"{case}: no image in {source / 'imagesTr'}")
            for image in images:
                place_file(image, tmp / "imagesTr" / image.name, link_mode)
            label_image = read_image(label_folder / f"{case}{ending}", f"{case}: {label_folder.name}")
            array = sitk.GetArrayFromImage(label_image)
            if label_source == "labels":
                coarse = axial_box_mask(array, merge_per_slice=merge_per_slice)
            else:
                if not set(np.unique(array).tolist()) <= {0, 1}:
                    raise InputError(f"{case}: box mask has values other than 0 and 1")
                coarse = (array > 0).astype(np.uint8)
            out = sitk.GetImageFromArray(coarse.astype(np.uint8))
            out.CopyInformation(label_image)
            (tmp / "labelsTr").mkdir(exist_ok=True)
            sitk.WriteImage(out, str(tmp / "labelsTr" / f"{case}{ending}"), useCompression=True)
        from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

        generate_dataset_json(str(tmp), dataset_json["channel_names"], {"background": 0, "tumor": 1}, len(cases),
                              ending, dataset_name=target.name,
                              description=f"coarse (filled axial box) labels made from {source.name}/"
                                          f"{label_folder.name}")
    for other in replaced:  # the new dataset is in place: the old ones with its id go
        if other != target:
            shutil.rmtree(other)
    return target
