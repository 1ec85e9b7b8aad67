"""Check box-mask files against their images before a box-guided model sees them.

nnU-Net's ``-prev_stage_predictions`` path trusts its inputs: a box mask on another grid is silently resampled,
a mask with other labels becomes extra one-hot channels, and a missing file stops the whole run with an
assertion. We check every case first and name each problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_kd.errors import InputError
from nnunet_kd.integrity.image_files import read_image

GEOMETRY_TOLERANCE = 1e-4  # relative (spacing, direction) / absolute mm (origin) tolerance


@dataclass(frozen=True)
class BoxCaseProblem:
    case: str
    problem: str

    def __str__(self) -> str:
        return f"{self.case}: {self.problem}"


def image_cases(images_folder: str | os.PathLike, file_ending: str = ".nii.gz") -> dict[str, Path]:
    """``{case: first channel file}`` of an nnU-Net image folder (``<case>_0000<ending>``)."""
    suffix = f"_0000{file_ending}"
    return {p.name[: -len(suffix)]: p for p in sorted(Path(images_folder).glob(f"*{suffix}"))}


def image_header(path: Path) -> sitk.ImageFileReader:
    """The file's header, read without its voxels: ``GetSize``, ``GetSpacing``, ``GetOrigin`` and ``GetDirection``
    as a ``sitk.Image`` has them (what :func:`~nnunet_kd.boxes.inputs.same_geometry` compares)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def same_geometry(a: sitk.Image, b: sitk.Image) -> str | None:
    """``None`` if two images share size, spacing, origin and direction, else what differs."""
    if a.GetSize() != b.GetSize():
        return f"size {b.GetSize()} differs from the image's {a.GetSize()}"
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=GEOMETRY_TOLERANCE, atol=0):
        return f"spacing {b.GetSpacing()} differs from the image's {a.GetSpacing()}"
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=GEOMETRY_TOLERANCE * 100):
        return f"origin {b.GetOrigin()} differs from the image's {a.GetOrigin()}"
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=GEOMETRY_TOLERANCE):
        return f"direction {b.GetDirection()} differs from the image's {a.GetDirection()}"
    return None


def check_box_case(image_file: Path, box_file: Path) -> str | None:
    """The problem with one case's box mask, or ``None``."""
    if not box_file.is_file():
        return f"box mask {box_file} is missing"
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image_file))
    reader.ReadImageInformation()
    try:
        box = read_image(box_file, f"box mask {box_file.name}")
    except InputError as error:  # a cut-off mask would read as empty boxes: no tumour to segment
        return str(error)
    image_info = sitk.Image([int(s) for s in reader.GetSize()], sitk.sitkUInt8)
    image_info.SetSpacing(reader.GetSpacing())
    image_info.SetOrigin(reader.GetOrigin())
    image_info.SetDirection(reader.GetDirection())
    mismatch = same_geometry(image_info, box)
    if mismatch:
        return f"box mask {box_file.name}: {mismatch}"
    values = np.unique(sitk.GetArrayViewFromImage(box))
    if not set(values.tolist()) <= {0, 1}:
        return f"box mask {box_file.name} has values {values.tolist()[:8]}; expected only 0 and 1"
    return None


def check_box_masks(
    images_folder: str | os.PathLike, boxes_folder: str | os.PathLike, file_ending: str = ".nii.gz"
) -> list[BoxCaseProblem]:
    """Check the box mask of every image case; returns the problems (empty when all is well).

    Raises:
        InputError: the images folder holds no ``*_0000`` images.
    """
    cases = image_cases(images_folder, file_ending)
    if not cases:
        raise InputError(f"no images named <case>_0000{file_ending} in {images_folder}")
    problems = []
    for case, image_file in cases.items():
        problem = check_box_case(image_file, Path(boxes_folder) / f"{case}{file_ending}")
        if problem:
            problems.append(BoxCaseProblem(case, problem))
    return problems


def require_valid_box_masks(
    images_folder: str | os.PathLike, boxes_folder: str | os.PathLike, file_ending: str = ".nii.gz"
) -> None:
    """:func:`check_box_masks`, raising one :class:`InputError` that lists every bad case."""
    problems = check_box_masks(images_folder, boxes_folder, file_ending)
    if problems:
        listing = "; ".join(str(p) for p in problems[:10]) + (f"; ... ({len(problems)} in all)" if len(problems) > 10 else "")
        raise InputError(f"{len(problems)} case(s) have unusable box masks: {listing}")
