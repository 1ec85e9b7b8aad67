"""Add configurations to an existing nnU-Net plans file, idempotently.

Used for every configuration nnunet-kd adds on top of nnU-Net's planning: the tiny test configuration, the
box-guided teacher's cascade configuration, compact students. A configuration that already exists with the same
content is left alone; one with different content is never overwritten (unless asked), and the plans file is
rewritten atomically, so a failure leaves it untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nnunet_kd.atomic import atomic_write_json
from nnunet_kd.errors import ConfigurationError


def load_plans(plans_file: str | os.PathLike) -> dict[str, Any]:
    """Read a plans JSON file with a clear error when it is missing or unreadable."""
    plans_file = Path(plans_file)
    if not plans_file.is_file():
        raise ConfigurationError(
            f"plans file {plans_file} does not exist; run nnUNetv2_plan_and_preprocess for this dataset first"
        )
    try:
        return json.loads(plans_file.read_text())
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"plans file {plans_file} is not valid JSON: {error}") from None


def add_configuration(
    plans_file: str | os.PathLike, name: str, configuration: dict[str, Any], overwrite: bool = False
) -> bool:
    """Add ``configuration`` under ``name`` to the plans file.

    Args:
        plans_file: ``nnUNet_preprocessed/<dataset>/<plans>.json``.
        name: configuration name (what ``nnUNetv2_train ... <configuration>`` takes).
        configuration: the configuration dict; usually ``{"inherits_from": "3d_fullres", ...overrides}``.
        overwrite: replace a different configuration of the same name.

    Returns:
        True if the file was changed, False if the same configuration was already there.

    Raises:
        ConfigurationError: the name exists with different content (and ``overwrite`` is False), or the
            configuration inherits from one that does not exist.
    """
    plans = load_plans(plans_file)
    configurations = plans.setdefault("configurations", {})
    parent = configuration.get("inherits_from")
    if parent is not None and parent not in configurations:
        raise ConfigurationError(
            f"configuration {name!r} inherits from {parent!r}, which {plans_file} does not have "
            f"(it has: {', '.join(configurations)})"
        )
    existing = configurations.get(name)
    if existing == configuration:
        return False
    if existing is not None and not overwrite:
        raise ConfigurationError(
            f"{plans_file} already has a configuration {name!r} with different content; choose another name or "
            "pass --overwrite to replace it"
        )
    configurations[name] = configuration
    atomic_write_json(plans_file, plans, indent=4)
    return True


def resolved_configuration(plans: dict[str, Any], name: str) -> dict[str, Any]:
    """The configuration with its ``inherits_from`` chain applied (as nnU-Net's PlansManager does)."""
    configurations = plans["configurations"]
    if name not in configurations:
        raise ConfigurationError(f"plans have no configuration {name!r} (they have: {', '.join(configurations)})")
    configuration = dict(configurations[name])
    parent = configuration.pop("inherits_from", None)
    if parent is None:
        return configuration
    resolved = resolved_configuration(plans, parent)
    resolved.update(configuration)
    return resolved


def small_plain_configuration(
    plans: dict[str, Any],
    base: str = "3d_fullres",
    features: tuple[int, ...] = (8, 16, 32, 64),
    patch_size: tuple[int, ...] | None = None,
    batch_size: int = 2,
) -> dict[str, Any]:
    """A configuration that inherits ``base`` (same preprocessed data) with a small ``PlainConvUNet``.

    For CPU smoke runs and the quick profile: ``len(features)`` stages, 3x3x3 kernels, stride 2 on every axis that
    is still divisible by 2 (and at least 8 voxels) at that depth, one conv per stage. ``patch_size`` defaults to the
    base configuration's patch size; every axis must be divisible by its total stride.

    Raises:
        ConfigurationError: ``base`` is missing or the patch cannot be divided by the network's strides.
    """
    base_config = resolved_configuration(plans, base)
    patch = [int(p) for p in (patch_size or base_config["patch_size"])]
    strides: list[list[int]] = [[1] * len(patch)]
    size = list(patch)
    for _ in features[1:]:
        step = [2 if s % 2 == 0 and s >= 8 else 1 for s in size]
        size = [s // k for s, k in zip(size, step)]
        strides.append(step)
    if all(s == 1 for s in strides[-1]):
        raise ConfigurationError(f"patch {patch} is too small or indivisible for {len(features)} stages")
    base_arch = base_config["architecture"]
    kwargs = dict(base_arch["arch_kwargs"])
    kwargs.update(
        n_stages=len(features),
        features_per_stage=list(features),
        kernel_sizes=[[3] * len(patch) for _ in features],
        strides=strides,
        n_conv_per_stage=[1] * len(features),
        n_conv_per_stage_decoder=[1] * (len(features) - 1),
    )
    return {
        "inherits_from": base,
        "patch_size": patch,
        "batch_size": batch_size,
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": kwargs,
            "_kw_requires_import": list(base_arch["_kw_requires_import"]),
        },
    }
