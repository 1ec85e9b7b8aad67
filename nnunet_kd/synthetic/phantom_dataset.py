"""Write synthetic phantoms as an nnU-Net raw dataset.

Layout (``<root>/Dataset<id>_<name>/``), in nnU-Net's raw format plus box masks:

- ``imagesTr/<case>_0000.nii.gz``: CT (int16 HU), ``dataset.json`` with ``channel_names {"0": "CT"}``;
- strong datasets: ``labelsTr/<case>.nii.gz`` (uint8, 1 = tumour);
- weak datasets: no ``labelsTr`` (the boxes are all a user would have); the phantom's ground truth is kept in
  ``referenceTr/`` to score pseudo-labels — nothing in the training chain reads it;
- every case: ``boxesTr/<case>.nii.gz``, the axial box mask in raw geometry (the format the box-guided teacher's
  inference takes through ``nnUNetv2_predict -prev_stage_predictions``), made by
  :func:`~nnunet_kd.boxes.axial_boxes.axial_box_mask`;
- held-out test cases: ``imagesTs``, ``labelsTs``, ``boxesTs``;
- ``phantoms.json``: the request (seed, config), per case the placed tumours, and a fingerprint of every file written.

The folder is built under a temporary name and renamed at the end: an interrupted run leaves nothing. Rerunning
the same request finds the finished dataset and does nothing, unless one of its files was changed or removed since
(then the dataset is written again, which gives the same phantoms); a different request for an existing dataset is
refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk

from nnunet_kd.atomic import atomic_path, remove_stale_for
from nnunet_kd.boxes.axial_boxes import axial_box_mask
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.integrity.fingerprints import files_fingerprint
from nnunet_kd.paths import dataset_folder_name
from nnunet_kd.synthetic.chest_phantom import Phantom, PhantomConfig, case_rng, config_to_dict, make_phantom

Role = Literal["strong", "weak"]
REQUEST_FILE = "phantoms.json"
BOXES_TR, BOXES_TS, REFERENCE_TR = "boxesTr", "boxesTs", "referenceTr"


def phantom_image(array: np.ndarray, spacing_xyz, dtype=None) -> sitk.Image:
    """A SimpleITK image of a ``(z, y, x)`` array with the phantom's spacing, an axial identity direction and the
    origin at the volume's corner so that the volume centre lies at (0, 0, 0) mm."""
    image = sitk.GetImageFromArray(array if dtype is None else array.astype(dtype))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    size_xyz = array.shape[::-1]
    image.SetOrigin(tuple(-(n - 1) / 2.0 * s for n, s in zip(size_xyz, spacing_xyz)))
    return image


def _write_case(folder: Path, split: Literal["Tr", "Ts"], case: str, phantom: Phantom, labels_visible: bool) -> None:
    sp = phantom.spacing_xyz
    images, labels, boxes = folder / f"images{split}", folder / f"labels{split}", folder / f"boxes{split}"
    sitk.WriteImage(phantom_image(phantom.image, sp), str(images / f"{case}_0000.nii.gz"), useCompression=True)
    label_folder = labels if labels_visible else folder / REFERENCE_TR
    sitk.WriteImage(phantom_image(phantom.label, sp, np.uint8), str(label_folder / f"{case}.nii.gz"), True)
    sitk.WriteImage(phantom_image(axial_box_mask(phantom.label), sp), str(boxes / f"{case}.nii.gz"), True)


def _request(role: Role, num_training: int, num_test: int, seed: int, config: PhantomConfig, prefix: str) -> dict:
    return {"role": role, "num_training": num_training, "num_test": num_test, "seed": seed, "case_prefix": prefix,
            "config": config_to_dict(config)}


def write_phantom_dataset(
    root: str | os.PathLike,
    dataset_id: int,
    name: str,
    num_training: int,
    num_test: int = 0,
    seed: int = 0,
    role: Role = "strong",
    config: PhantomConfig | None = None,
    case_prefix: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate phantoms and write them as the raw dataset ``<root>/Dataset<id>_<name>``.

    Args:
        root: usually ``$nnUNet_raw``.
        dataset_id, name: nnU-Net dataset identifier and name.
        num_training, num_test: cases in ``imagesTr`` and ``imagesTs``.
        seed: global seed; case ``i`` of a role depends only on ``(seed, role, i)``.
        role: ``strong`` (voxel labels in ``labelsTr``) or ``weak`` (boxes only; ground truth in ``referenceTr``).
        config: phantom geometry and tumour distribution.
        case_prefix: case names are ``<prefix>_<i:03d>`` (test: ``<prefix>_t<i:03d>``); default: the role.
        overwrite: replace an existing dataset made from a different request.
        progress: print one line per case.

    Returns:
        The dataset folder.

    Raises:
        ConfigurationError: impossible request, or an existing dataset (or another dataset with this id) that
            differs and ``overwrite`` is False.
    """
    config = config or PhantomConfig()
    config.validate()
    if role not in ("strong", "weak"):
        raise ConfigurationError(f"role must be 'strong' or 'weak', not {role!r}")
    if num_training < 1 or num_test < 0:
        raise ConfigurationError(f"need at least one training case (got {num_training}) and num_test >= 0")
    prefix = case_prefix or role
    root = Path(root)
    target = root / dataset_folder_name(dataset_id, name)
    request = _request(role, num_training, num_test, seed, config, prefix)
    same_request = _existing_request(target) == request
    if same_request and _recorded_fingerprint(target) == _files_fingerprint(target):
        return target
    clashes = [p for p in root.glob(f"Dataset{dataset_id:03d}_*") if p.name != target.name and p.is_dir()]
    if clashes and not overwrite:
        raise ConfigurationError(
            f"another dataset with id {dataset_id} exists: {clashes[0]}; nnU-Net resolves datasets by id, so pick "
            "another id or remove it"
        )
    if same_request:
        print(f"{target.name}: files changed or removed since it was written; writing it again", flush=True)
    elif target.exists() and not overwrite:
        raise ConfigurationError(
            f"{target} exists and was made from a different request (or is not a phantom dataset); pass "
            "--overwrite to replace it"
        )

    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    remove_stale_for(target)  # a killed earlier run's hidden temporary folder
    with atomic_path(target) as tmp:
        subfolders = ["imagesTr", BOXES_TR, "labelsTr" if role == "strong" else REFERENCE_TR]
        if num_test:
            subfolders += ["imagesTs", "labelsTs", BOXES_TS]
        for sub in subfolders:
            (tmp / sub).mkdir(parents=True)
        cases: dict[str, list[dict]] = {}
        jobs = [("Tr", i, f"{prefix}_{i:03d}", role) for i in range(num_training)]
        jobs += [("Ts", i, f"{prefix}_t{i:03d}", f"{role}-test") for i in range(num_test)]
        for number, (split, index, case, stream) in enumerate(jobs, start=1):
            phantom = make_phantom(config, case_rng(seed, stream, index))
            _write_case(tmp, split, case, phantom, labels_visible=(role == "strong" or split == "Ts"))
            cases[case] = [asdict(t) for t in phantom.tumours]
            if progress:
                print(f"[{number}/{len(jobs)}] {case}: {len(phantom.tumours)} tumour(s), "
                      f"{int(phantom.label.sum())} tumour voxels", flush=True)
        generate_dataset_json(
            str(tmp),
            channel_names={0: "CT"},
            labels={"background": 0, "tumor": 1},
            num_training_cases=num_training,
            file_ending=".nii.gz",
            dataset_name=target.name,
            description=f"nnunet-kd synthetic chest-CT phantoms ({role}: "
            + ("voxel labels" if role == "strong" else "axial boxes only") + ")",
            reference="generated by nnunet_kd.synthetic.chest_phantom",
            license="CC0 (synthetic data)",
        )
        record = {"request": request, "cases": cases, "files": _files_fingerprint(tmp)}
        (tmp / REQUEST_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return target


def _files_fingerprint(folder: Path) -> str:
    """Fingerprint of every file of the dataset but its request (relative paths, sizes, modification times)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != REQUEST_FILE)
    return files_fingerprint(files, settings=[p.relative_to(folder).as_posix() for p in files])


def _recorded_fingerprint(folder: Path) -> str | None:
    try:
        return json.loads((folder / REQUEST_FILE).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None


def _existing_request(folder: Path) -> dict | None:
    try:
        return json.loads((folder / REQUEST_FILE).read_text())["request"]
    except (OSError, ValueError, KeyError):
        return None
