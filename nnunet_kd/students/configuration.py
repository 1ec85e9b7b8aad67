"""Add a compact-student configuration to an existing nnU-Net plans file.

The student configuration inherits from a planned one (``3d_fullres`` by default) and replaces only its
``architecture``: same preprocessed data, patch size, batch size and normalisation, no re-preprocessing (a
lower-resolution student also replaces the spacing, patch and data identifier, :mod:`.resolution`)::

    "3d_fullres_student": {"inherits_from": "3d_fullres",
                           "architecture": {"network_class_name": "nnunet_kd.students.depthwise_unet....",
                                            "arch_kwargs": {...}, "_kw_requires_import": [...]}}

``nnUNetv2_train <ds> 3d_fullres_student 0 -tr <any trainer>`` and ``nnUNetv2_predict ... -c 3d_fullres_student``
then build the student through nnU-Net's ``get_network_from_plans``. The width multiplier is applied here, to the
parent's ``features_per_stage`` (rounded, at least one channel each), so the plans state the real channel counts.
Everything is validated before the file is touched; writing goes through :func:`nnunet_kd.plans.add_configuration`
(idempotent, refuses to replace a different configuration of the same name, atomic).

Importing this module is cheap (no torch).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.paths import plans_file as dataset_plans_file
from nnunet_kd.plans import add_configuration, load_plans, resolved_configuration
from nnunet_kd.students.convolutional_students import convolutional_student_architecture
from nnunet_kd.students.resolution import coarser_resolution_entries

STUDENT_CLASS = "nnunet_kd.students.depthwise_unet.DepthwiseSeparableResidualUNet"
DUAL_OUTPUT_STUDENT_CLASS = "nnunet_kd.students.dual_output_unet.DualOutputDepthwiseSeparableResidualUNet"
#: the same classes under the path that plans written before version 0.2 name (see :mod:`nnunet_kd.networks`)
LEGACY_STUDENT_CLASSES = ("nnunet_kd.networks.depthwise_unet.DepthwiseSeparableResidualUNet",
                          "nnunet_kd.networks.dual_output_unet.DualOutputDepthwiseSeparableResidualUNet")
STUDENT_CLASSES = (STUDENT_CLASS, DUAL_OUTPUT_STUDENT_CLASS, *LEGACY_STUDENT_CLASSES)
DEFAULT_ASPP_RATES = (1, 2, 3)  # same as nnunet_kd.students.aspp.DEFAULT_ASPP_RATES (kept here: no torch import)
KW_REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
_COPIED_KWARGS = ("n_stages", "conv_op", "kernel_sizes", "strides", "conv_bias", "norm_op", "norm_op_kwargs",
                  "dropout_op", "dropout_op_kwargs", "nonlin", "nonlin_kwargs")


def resolve_plans_file(dataset: str | None, plans: str) -> Path:
    """The plans JSON named by ``-d DATASET -p PLANS``, or ``plans`` itself when it is a ``.json`` path.

    Args:
        dataset: dataset id (``501``) or name (``Dataset501_Student``), resolved as nnU-Net does; may be None when
            ``plans`` is a file path.
        plans: plans identifier (``nnUNetPlans``) or a path to a plans JSON file.
    """
    if plans.endswith(".json") or os.sep in plans:
        return Path(plans)
    if dataset is None:
        raise ConfigurationError(f"give a dataset (-d) for plans {plans!r}, or a path to a plans .json file")
    return dataset_plans_file(dataset, plans)


def scaled_features(features_per_stage: Sequence[int], width_multiplier: float) -> list[int]:
    """``round(f * width_multiplier)`` per stage; ``ConfigurationError`` when the multiplier or a result is < 1."""
    if isinstance(width_multiplier, bool) or not math.isfinite(width_multiplier) or width_multiplier <= 0:
        raise ConfigurationError(f"width multiplier must be a positive number, got {width_multiplier}")
    scaled = [int(round(f * width_multiplier)) for f in features_per_stage]
    if min(scaled) < 1:
        raise ConfigurationError(
            f"width multiplier {width_multiplier} leaves a stage with {min(scaled)} channels "
            f"(features_per_stage {list(features_per_stage)} -> {scaled}); every stage needs at least 1"
        )
    return scaled


def bottleneck_size(patch_size: Sequence[int], strides: Sequence[Sequence[int] | int]) -> list[int]:
    """Spatial size of the bottleneck feature map for ``patch_size`` after all encoder ``strides``."""
    size = [int(s) for s in patch_size]
    for stride in strides:
        stride = [stride] * len(size) if isinstance(stride, int) else stride
        size = [i // s for i, s in zip(size, stride)]
    return size


def check_aspp_rates_for_plan(rates: Sequence[int], patch_size: Sequence[int], strides: Sequence,
                              bottleneck_kernel: Sequence[int] | int = 3) -> None:
    """``ConfigurationError`` unless every rate is a distinct positive integer below the bottleneck size.

    Only axes along which the bottleneck kernel is larger than 1 count (a kernel of 1 ignores dilation).
    """
    if len(rates) == 0:
        raise ConfigurationError("--aspp-rates needs at least one dilation rate (or use --no-aspp)")
    if any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rates) or len(set(rates)) != len(rates):
        raise ConfigurationError(f"ASPP dilation rates must be distinct positive integers, got {list(rates)}")
    size = bottleneck_size(patch_size, strides)
    kernel = [bottleneck_kernel] * len(size) if isinstance(bottleneck_kernel, int) else list(bottleneck_kernel)
    dilated_axes = [s for s, k in zip(size, kernel) if k > 1] or size
    if max(rates) >= min(dilated_axes):
        raise ConfigurationError(
            f"ASPP dilation rate {max(rates)} is too large: patch {list(patch_size)} with strides gives a bottleneck "
            f"feature map of {size}, so every rate must be < {min(dilated_axes)} (choose smaller --aspp-rates)"
        )


def student_architecture(
    parent_configuration: dict[str, Any],
    width_multiplier: float = 1.0,
    aspp_rates: Sequence[int] | None = DEFAULT_ASPP_RATES,
    dual_output: bool = False,
    n_blocks_per_stage: int = 1,
) -> dict[str, Any]:
    """The ``architecture`` entry of a student derived from a resolved parent configuration (validated).

    The parent must be a DNA U-Net (``PlainConvUNet``, ``ResidualEncoderUNet`` or one of ours): stages, strides,
    kernels, norm and nonlinearity are kept, features are scaled, decoder convolutions per stage are kept.
    """
    architecture = parent_configuration.get("architecture", {})
    kwargs = architecture.get("arch_kwargs", {})
    missing = [k for k in (*_COPIED_KWARGS, "features_per_stage") if k not in kwargs]
    if missing:
        raise ConfigurationError(
            f"the parent configuration's network {architecture.get('network_class_name')!r} is not a U-Net that a "
            f"student can be derived from (its arch_kwargs lack {', '.join(missing)})"
        )
    if isinstance(n_blocks_per_stage, bool) or not isinstance(n_blocks_per_stage, int) or n_blocks_per_stage < 1:
        raise ConfigurationError(f"blocks per stage must be a positive integer, got {n_blocks_per_stage}")
    n_stages = int(kwargs["n_stages"])
    student_kwargs: dict[str, Any] = {key: kwargs[key] for key in _COPIED_KWARGS}
    student_kwargs["features_per_stage"] = scaled_features(kwargs["features_per_stage"], width_multiplier)
    student_kwargs["n_blocks_per_stage"] = [n_blocks_per_stage] * n_stages
    student_kwargs["n_conv_per_stage_decoder"] = kwargs.get("n_conv_per_stage_decoder", [2] * (n_stages - 1))
    if aspp_rates:
        rates = list(aspp_rates)
        check_aspp_rates_for_plan(rates, parent_configuration["patch_size"], kwargs["strides"],
                                  kwargs["kernel_sizes"][-1])
        student_kwargs["aspp_rates"] = rates
    else:
        student_kwargs["aspp_rates"] = None
    student_kwargs["aspp_image_pooling"] = True
    return {
        "network_class_name": DUAL_OUTPUT_STUDENT_CLASS if dual_output else STUDENT_CLASS,
        "arch_kwargs": student_kwargs,
        "_kw_requires_import": [k for k in KW_REQUIRES_IMPORT if k in student_kwargs],
    }


STUDENT_KINDS = ("depthwise", "plain", "residual")


def default_student_name(parent: str, dual_output: bool, kind: str = "depthwise", spacing_factor: float = 1.0) -> str:
    """``3d_fullres_student`` or ``3d_fullres_student_do`` (depthwise), ``3d_fullres_plain_student``...; a coarser
    student gets ``_x<factor>``: ``3d_fullres_plain_student_x2``."""
    if kind != "depthwise":
        name = f"{parent}_{kind}_student"
    else:
        name = f"{parent}_student_do" if dual_output else f"{parent}_student"
    return name if spacing_factor == 1.0 else f"{name}_x{spacing_factor:g}"


def add_student_configuration(
    plans_file: str | os.PathLike,
    name: str | None = None,
    parent: str = "3d_fullres",
    width_multiplier: float = 1.0,
    aspp_rates: Sequence[int] | None = DEFAULT_ASPP_RATES,
    dual_output: bool = False,
    n_blocks_per_stage: int = 1,
    overwrite: bool = False,
    kind: str = "depthwise",
    n_stages: int | None = None,
    spacing_factor: float = 1.0,
) -> tuple[str, bool]:
    """Add a student configuration inheriting from ``parent`` to ``plans_file``.

    ``spacing_factor`` > 1 makes a lower-resolution student (:mod:`.resolution`): its own spacing, patch and
    preprocessed data (run ``nnUNetv2_preprocess -c <name>`` before training it).

    ``kind`` ``depthwise`` is the depthwise-separable residual U-Net (with ASPP, optionally dual-output); ``plain``
    and ``residual`` are narrow nnU-Net U-Nets (:mod:`.convolutional_students`, ``n_stages`` may drop the deepest
    stages; ASPP, dual output and blocks per stage do not apply to them).

    Returns:
        ``(name, changed)``: the configuration name and whether the file was written (False: already there).

    Raises:
        ConfigurationError: bad width or ASPP rates, unknown parent, or ``name`` exists with different content
            (and not ``overwrite``). The file is untouched in every error case.
    """
    plans = load_plans(plans_file)
    if parent not in plans.get("configurations", {}):
        raise ConfigurationError(
            f"{plans_file} has no configuration {parent!r} to derive a student from "
            f"(it has: {', '.join(plans.get('configurations', {}))})"
        )
    if kind not in STUDENT_KINDS:
        raise ConfigurationError(f"unknown student kind {kind!r}; choose one of: {', '.join(STUDENT_KINDS)}")
    name = name or default_student_name(parent, dual_output, kind, spacing_factor)
    if name == parent:
        raise ConfigurationError(f"the student configuration cannot replace its parent {parent!r}; choose --name")
    resolved = resolved_configuration(plans, parent)
    entries: dict[str, Any] = {}
    if spacing_factor != 1.0:
        # the parent's strides decide the patch; both student families keep them (fewer stages: a prefix)
        entries = coarser_resolution_entries(resolved, spacing_factor, f"{plans.get('plans_name', 'nnUNetPlans')}_"
                                             f"{name}")
        resolved = {**resolved, **entries}
    if kind == "depthwise":
        if n_stages is not None:
            raise ConfigurationError("--stages applies to the plain and residual students only")
        architecture = student_architecture(resolved, width_multiplier, aspp_rates, dual_output, n_blocks_per_stage)
    else:
        if dual_output:
            raise ConfigurationError("--dual-output applies to the depthwise student only")
        architecture = convolutional_student_architecture(resolved, kind, width_multiplier, n_stages)
    changed = add_configuration(plans_file, name, {"inherits_from": parent, **entries, "architecture": architecture},
                                overwrite=overwrite)
    return name, changed
