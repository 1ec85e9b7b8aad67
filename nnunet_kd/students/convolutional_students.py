"""Compact students built from nnU-Net's own U-Nets: a narrow ``PlainConvUNet`` or ``ResidualEncoderUNet``, with
the parent's stages or fewer.

Dense 3D convolutions are what CPUs (oneDNN) and GPUs (cuDNN tensor cores) run fastest, so scaling the features of
nnU-Net's default network down makes a student whose wall time falls with its MACs, which the depthwise-separable
student (:mod:`.depthwise_unet`) does not do (its depthwise 3D convolutions are memory-bound; ``benchmarks/README.md``).
Dropping the deepest stages removes the coarsest, widest feature maps (most parameters) and keeps the full-resolution
path. Both networks are the ``dynamic_network_architectures`` classes that nnU-Net's plans already name, so
``nnUNetv2_train`` and ``nnUNetv2_predict`` build them with no plugin code.

Importing this module is cheap (no torch).
"""

from __future__ import annotations

from typing import Any

from nnunet_kd.errors import ConfigurationError

PLAIN_UNET_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
RESIDUAL_UNET_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
#: encoder blocks per stage of nnU-Net's residual-encoder presets (ResEnc M/L), cut to the number of stages
RESIDUAL_BLOCKS_PER_STAGE = (1, 3, 4, 6, 6, 6, 6, 6)
_SHARED_KWARGS = ("conv_op", "conv_bias", "norm_op", "norm_op_kwargs", "dropout_op", "dropout_op_kwargs", "nonlin",
                  "nonlin_kwargs")
KW_REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
FAMILIES = ("plain", "residual")


def _stage_count(parent_stages: int, n_stages: int | None) -> int:
    if n_stages is None:
        return parent_stages
    if isinstance(n_stages, bool) or not isinstance(n_stages, int) or not 2 <= n_stages <= parent_stages:
        raise ConfigurationError(f"a student needs 2 to {parent_stages} stages (the parent's), got {n_stages}")
    return n_stages


def convolutional_student_architecture(parent_configuration: dict[str, Any], family: str = "plain",
                                       width_multiplier: float = 0.5, n_stages: int | None = None) -> dict[str, Any]:
    """The ``architecture`` entry of a narrow nnU-Net U-Net derived from a resolved parent configuration.

    Args:
        parent_configuration: the resolved parent (``3d_fullres``): a ``PlainConvUNet`` or ``ResidualEncoderUNet``.
        family: ``plain`` (``PlainConvUNet``, the parent's convolutions per stage) or ``residual``
            (``ResidualEncoderUNet`` with nnU-Net's ResEnc blocks per stage).
        width_multiplier: scales the parent's ``features_per_stage`` (each rounded, at least 1).
        n_stages: keep the parent's first stages only (default: all): kernels and strides of those stages.

    Raises:
        ConfigurationError: an unknown family, a parent that is not such a U-Net, a width that leaves a stage
            without features, or a stage count out of range.
    """
    from nnunet_kd.students.configuration import scaled_features

    if family not in FAMILIES:
        raise ConfigurationError(f"unknown student kind {family!r}; choose one of: depthwise, {', '.join(FAMILIES)}")
    architecture = parent_configuration.get("architecture", {})
    kwargs = architecture.get("arch_kwargs", {})
    needed = ("n_stages", "features_per_stage", "kernel_sizes", "strides", *_SHARED_KWARGS)
    missing = [k for k in needed if k not in kwargs]
    if missing:
        raise ConfigurationError(
            f"the parent configuration's network {architecture.get('network_class_name')!r} is not a U-Net that a "
            f"student can be derived from (its arch_kwargs lack {', '.join(missing)})"
        )
    stages = _stage_count(int(kwargs["n_stages"]), n_stages)
    student: dict[str, Any] = {key: kwargs[key] for key in _SHARED_KWARGS}
    student.update(
        n_stages=stages,
        features_per_stage=scaled_features(kwargs["features_per_stage"][:stages], width_multiplier),
        kernel_sizes=kwargs["kernel_sizes"][:stages],
        strides=kwargs["strides"][:stages],
        n_conv_per_stage_decoder=list(kwargs.get("n_conv_per_stage_decoder", [2] * (stages - 1)))[: stages - 1],
    )
    if family == "plain":
        student["n_conv_per_stage"] = list(kwargs.get("n_conv_per_stage", [2] * stages))[:stages]
        class_name = PLAIN_UNET_CLASS
    else:
        student["n_blocks_per_stage"] = list(RESIDUAL_BLOCKS_PER_STAGE[:stages])
        class_name = RESIDUAL_UNET_CLASS
    return {"network_class_name": class_name, "arch_kwargs": student,
            "_kw_requires_import": [k for k in KW_REQUIRES_IMPORT if k in student]}

