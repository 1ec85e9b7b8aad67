"""Lazy, checked access to nnU-Net's folder environment variables.

nnU-Net reads ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` at import time and only warns when
they are missing; a command then fails much later with a ``TypeError`` on ``None``. We read them when needed and
stop early with one message that says which variable is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from nnunet_kd.errors import ConfigurationError, InputError

NNUNET_FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def nnunet_folder(variable: str) -> Path:
    """Return the folder named by one of nnU-Net's environment variables.

    Raises:
        ConfigurationError: the variable is unset or empty.
    """
    if variable not in NNUNET_FOLDER_VARIABLES:
        raise ValueError(f"not an nnU-Net folder variable: {variable}")
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigurationError(
            f"environment variable {variable} is not set. nnU-Net needs nnUNet_raw, nnUNet_preprocessed and "
            f"nnUNet_results (see nnU-Net's documentation/setting_up_paths.md), e.g. export {variable}=/data/{variable}"
        )
    return Path(value)


def require_nnunet_environment(*variables: str) -> dict[str, Path]:
    """Check several folder variables at once; the error lists every missing one."""
    variables = variables or NNUNET_FOLDER_VARIABLES
    missing = [v for v in variables if not os.environ.get(v, "").strip()]
    if missing:
        raise ConfigurationError(
            f"environment variable(s) not set: {', '.join(missing)}. nnU-Net needs nnUNet_raw, nnUNet_preprocessed "
            "and nnUNet_results pointing at writable folders (see nnU-Net's documentation/setting_up_paths.md)"
        )
    return {v: Path(os.environ[v]) for v in variables}


def raw_dataset_folder(dataset_name: str) -> Path:
    """``$nnUNet_raw/<dataset_name>``."""
    return nnunet_folder("nnUNet_raw") / dataset_name


def preprocessed_dataset_folder(dataset_name: str) -> Path:
    """``$nnUNet_preprocessed/<dataset_name>``."""
    return nnunet_folder("nnUNet_preprocessed") / dataset_name


def resolve_dataset_name(dataset: str | int) -> str:
    """``"500"`` or ``"Dataset500_Name"`` -> ``"Dataset500_Name"``, looked up like nnU-Net does (raw,
    preprocessed and results folders).

    Raises:
        ConfigurationError: no such dataset.
    """
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(str(dataset))
    except RuntimeError:
        raise ConfigurationError(
            f"dataset {dataset!r} not found under nnUNet_raw, nnUNet_preprocessed or nnUNet_results"
        ) from None


def plans_file(dataset: str | int, plans_identifier: str = "nnUNetPlans") -> Path:
    """``$nnUNet_preprocessed/<dataset>/<plans_identifier>.json`` (the file may not exist yet)."""
    return preprocessed_dataset_folder(resolve_dataset_name(dataset)) / f"{plans_identifier}.json"


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's ``Dataset%03d_Name`` (id 1..999, alphanumeric name)."""
    if not 0 < dataset_id < 1000:
        raise ConfigurationError(f"dataset id {dataset_id} must be between 1 and 999")
    if not name or not name.replace("_", "").isalnum():
        raise ConfigurationError(f"dataset name {name!r} must be alphanumeric (underscores allowed)")
    return f"Dataset{dataset_id:03d}_{name}"


def read_dataset_json(folder: str | os.PathLike) -> dict:
    """``<folder>/dataset.json`` of a raw dataset.

    Raises:
        InputError: the file is missing or is not valid JSON (the message names it).
    """
    path = Path(folder) / "dataset.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path} is missing or not valid JSON ({error})") from None


def datasets_with_id(raw_root: str | os.PathLike, dataset_id: int) -> list[Path]:
    """Every ``Dataset<id>_*`` folder under ``raw_root``: nnU-Net resolves an id only when there is exactly one."""
    return sorted(p for p in Path(raw_root).glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())


def refuse_writing_into_inputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None],
                               job: str) -> None:
    """Stop before anything is touched when a folder that a job would write, replace or delete is one of its inputs,
    holds one, or lies inside one.

    Raises:
        ConfigurationError: naming the output and the input (``--overwrite`` does not lift this).
    """
    sources = [Path(p).resolve() for p in inputs if p is not None]
    for output in outputs:
        target = Path(output).resolve()
        for source in sources:
            if target == source or source.is_relative_to(target) or target.is_relative_to(source):
                raise ConfigurationError(
                    f"{job} would write into or replace {output}, which holds its input {source}; choose another "
                    "output (nothing was changed)")
