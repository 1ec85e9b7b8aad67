"""The plans configuration of box-guided models (nnU-Net's cascade input path) and its checks."""

from __future__ import annotations

import os
from pathlib import Path

from nnunet_kd.boxes.channel import PREVIOUS_STAGE_NAME
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.plans import add_configuration


def box_guided_configuration(base: str, patch_size: list[int] | None = None) -> dict:
    """A configuration that reuses ``base`` (same preprocessed data) and takes the box mask as previous stage.

    ``patch_size`` optionally overrides the base's patch (the paper's teacher sees tumour-centred crops); it must be
    divisible by the base network's strides.
    """
    configuration = {"inherits_from": base, "previous_stage": PREVIOUS_STAGE_NAME}
    if patch_size is not None:
        configuration["patch_size"] = [int(p) for p in patch_size]
    return configuration


def default_box_configuration_name(base: str) -> str:
    return f"{base}_box"


def add_box_guided_configuration(plans_file: str | os.PathLike, base: str = "3d_fullres", name: str | None = None,
                                 overwrite: bool = False, patch_size: list[int] | None = None) -> tuple[str, bool]:
    """Add the box-guided configuration for ``base`` to a plans file (idempotent).

    Returns:
        ``(configuration name, whether the file changed)``.

    Raises:
        ConfigurationError: see :func:`nnunet_kd.plans.add_configuration`, or a patch the network cannot divide.
    """
    name = name or default_box_configuration_name(base)
    if patch_size is not None:
        _check_patch_divisible(plans_file, base, patch_size)
    changed = add_configuration(Path(plans_file), name, box_guided_configuration(base, patch_size),
                                overwrite=overwrite)
    return name, changed


def _check_patch_divisible(plans_file, base: str, patch_size: list[int]) -> None:
    import numpy as np

    from nnunet_kd.plans import load_plans, resolved_configuration

    strides = resolved_configuration(load_plans(plans_file), base)["architecture"]["arch_kwargs"]["strides"]
    total = np.prod(np.asarray(strides), axis=0)
    if len(patch_size) != len(total) or any(int(p) % int(t) for p, t in zip(patch_size, total)):
        raise ConfigurationError(f"patch {list(patch_size)} is not divisible by the total stride {total.tolist()} of "
                                 f"configuration {base!r}")


def check_box_guided_configuration(configuration_manager, label_manager, configuration_name: str) -> None:
    """Raise :class:`ConfigurationError` unless a configuration can feed a box-guided model.

    Args:
        configuration_manager: nnU-Net's ``ConfigurationManager`` of the configuration.
        label_manager: nnU-Net's ``LabelManager`` of the dataset.
        configuration_name: for the message.
    """
    if configuration_manager.previous_stage_name is None:
        raise ConfigurationError(
            f"configuration {configuration_name!r} has no box input; add one with "
            f"'nnunet_kd add-box-config -d <dataset> -c {configuration_name}' and train on "
            f"'{default_box_configuration_name(configuration_name)}'"
        )
    if label_manager.has_regions or len(label_manager.foreground_labels) != 1:
        raise ConfigurationError(
            f"box-guided models need exactly one foreground label (the tumour); this dataset has "
            f"{list(label_manager.foreground_labels)}"
        )
