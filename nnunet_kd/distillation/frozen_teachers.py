"""Frozen teachers for distillation: resolve, check against the student, load, and run.

A teacher is any trained nnU-Net model (plain, residual-encoder, box-guided...) named by its nnU-Net identifiers
(:class:`~nnunet_kd.distillation.spec.TeacherSpec`). Its network is rebuilt by its own trainer class's static
``build_network_architecture`` from the ``plans.json``/``dataset.json`` in its model folder, its weights are loaded
from the checkpoint, and it runs in eval mode without gradients (autocast on CUDA). Before anything is loaded, every
teacher is checked against the student: label set, target spacing, axis order, image channels, patch divisibility by
the teacher's pooling; a box-guided teacher gets the axial boxes of the batch's target as its extra channel, and a
teacher with other CT normalisation statistics gets the student's patch converted exactly into its normalisation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnunet_kd.boxes.axial_boxes import axial_axis_after_transpose
from nnunet_kd.boxes.channel import box_channel_of_labels
from nnunet_kd.distillation.ct_normalization import NormalizationConversion, normalization_conversion_from_plans
from nnunet_kd.distillation.spec import TeacherSpec
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.integrity.checkpoints import load_checkpoint, network_weights


@dataclass
class StudentContext:
    """What a teacher must agree with, taken from the student trainer."""

    plans: dict
    configuration: str
    dataset_json: dict
    fold: int | str
    patch_size: tuple[int, ...]
    transpose_forward: tuple[int, ...]
    spacing: tuple[float, ...]
    num_image_channels: int
    #: nnU-Net's ignore label of the student's dataset (not tumour when boxes are derived from a label), or None
    ignore_label: int | None = None


@dataclass
class FrozenTeacher:
    """One loaded teacher: a network per fold, plus how to prepare its input."""

    spec: TeacherSpec
    label: str
    networks: list[nn.Module]
    model_folder: Path
    folds: tuple
    needs_boxes: bool
    box_axial_axis: int
    normalization: NormalizationConversion
    strides: list[list[int]]
    checkpoint_hashes: dict[str, str] = field(default_factory=dict)

    def prepare_input(self, data: torch.Tensor, target_full: torch.Tensor | None,
                      boxes: torch.Tensor | None = None, ignore_label: int | None = None) -> torch.Tensor:
        """Student batch ``(B, C, *patch)`` -> this teacher's input (normalisation, optional box channel).

        A box-guided teacher takes ``boxes`` ``(B, 1, *patch)`` when given (the trainer's data-augmentation workers
        computed them, :class:`~nnunet_kd.boxes.channel.AppendTeacherBoxChannelTransform`); otherwise they are derived
        here from ``target_full`` ``(B, 1, *patch)``, on the host.
        """
        x = self.normalization(data) if self.normalization.needed else data
        if not self.needs_boxes:
            return x
        if boxes is None:
            if target_full is None:
                raise ConfigurationError(f"teacher {self.label} needs boxes, derived from the target, but got none")
            boxes = box_channel_of_labels(target_full, self.box_axial_axis, ignore_label)
        return torch.cat([x, boxes.to(x.device, x.dtype)], dim=1)


def model_folder(spec: TeacherSpec) -> Path:
    """``$nnUNet_results/<dataset>/<trainer>__<plans>__<configuration>``."""
    from nnunet_kd.paths import nnunet_folder, resolve_dataset_name

    dataset = resolve_dataset_name(spec.dataset)
    return nnunet_folder("nnUNet_results") / dataset / f"{spec.trainer}__{spec.plans}__{spec.configuration}"


def _fold_folder(folder: Path, fold) -> Path:
    return folder / f"fold_{fold}"


def _load_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConfigurationError(f"{what} {path} is missing (was the teacher trained with nnUNetv2_train?)")
    return json.loads(path.read_text())


def check_teacher(spec: TeacherSpec, label: str, student: StudentContext) -> tuple[Path, tuple, dict, dict]:
    """All checks that need no network: returns ``(model folder, folds, teacher plans, teacher dataset.json)``.

    Raises:
        ConfigurationError: the first problem found, naming the teacher.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = model_folder(spec)
    where = f"teacher {label} ({folder})"
    if not folder.is_dir():
        raise ConfigurationError(f"{where}: model folder does not exist")
    plans = _load_json(folder / "plans.json", f"{where}: plans file")
    dataset_json = _load_json(folder / "dataset.json", f"{where}: dataset.json")
    folds = spec.resolved_folds(student.fold)
    for fold in folds:
        checkpoint = _fold_folder(folder, fold) / spec.checkpoint
        if not checkpoint.is_file():
            raise ConfigurationError(f"{where}: fold {fold} has no {spec.checkpoint} ({checkpoint})")
    # the student's ignore label is a property of its labels, not a class a teacher predicts
    if _classes(dataset_json["labels"]) != _classes(student.dataset_json["labels"]):
        raise ConfigurationError(f"{where}: label set {dataset_json['labels']} differs from the student's "
                                 f"{student.dataset_json['labels']}")
    if len(dataset_json["channel_names"]) != student.num_image_channels:
        raise ConfigurationError(f"{where}: {len(dataset_json['channel_names'])} image channels, the student has "
                                 f"{student.num_image_channels}")
    manager = PlansManager(plans)
    if spec.configuration not in plans["configurations"]:
        raise ConfigurationError(f"{where}: plans have no configuration {spec.configuration!r}")
    cm = manager.get_configuration(spec.configuration)
    if tuple(manager.transpose_forward) != tuple(student.transpose_forward):
        raise ConfigurationError(f"{where}: axis order {manager.transpose_forward} differs from the student's "
                                 f"{list(student.transpose_forward)} (use the teacher's plans for the student dataset)")
    if not np.allclose(cm.spacing, student.spacing, rtol=1e-3):
        raise ConfigurationError(f"{where}: target spacing {cm.spacing} differs from the student's "
                                 f"{list(student.spacing)} (move the teacher's plans to the student dataset with "
                                 "nnUNetv2_move_plans_between_datasets)")
    pooling = np.prod(np.asarray(cm.pool_op_kernel_sizes), axis=0)
    if any(p % int(k) for p, k in zip(student.patch_size, pooling)):
        raise ConfigurationError(f"{where}: the student's patch {list(student.patch_size)} is not divisible by the "
                                 f"teacher's total pooling {pooling.tolist()}")
    if cm.previous_stage_name is not None and len(dataset_json["labels"]) != 2:
        raise ConfigurationError(f"{where}: box-guided teachers need exactly one foreground label")
    return folder, folds, plans, dataset_json


def _classes(labels: dict) -> dict:
    """A ``dataset.json`` label dict without nnU-Net's ``ignore`` entry."""
    return {name: value for name, value in labels.items() if name != "ignore"}


def load_teacher(spec: TeacherSpec, label: str, student: StudentContext, device: torch.device,
                 with_deep_supervision: bool) -> FrozenTeacher:
    """Check, build and load one teacher (all its folds), frozen."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder, folds, plans, dataset_json = check_teacher(spec, label, student)
    manager = PlansManager(plans)
    cm = manager.get_configuration(spec.configuration)
    trainer_class = recursive_find_trainer_class_by_name(spec.trainer)
    num_inputs = determine_num_input_channels(manager, cm, dataset_json)
    num_heads = manager.get_label_manager(dataset_json).num_segmentation_heads
    networks, hashes = [], {}
    for fold in folds:
        checkpoint = _fold_folder(folder, fold) / spec.checkpoint
        network = trainer_class.build_network_architecture(manager, cm, num_inputs, num_heads, with_deep_supervision)
        weights = network_weights(load_checkpoint(checkpoint, f"teacher {label}, fold {fold}"))
        network.load_state_dict(weights)
        network.to(device).eval().requires_grad_(False)
        networks.append(network)
        hashes[str(checkpoint)] = weights_hash(weights)
    normalization = normalization_conversion_from_plans(student.plans, plans, student.configuration,
                                                        spec.configuration)
    return FrozenTeacher(spec=spec, label=label, networks=networks, model_folder=folder, folds=folds,
                         needs_boxes=cm.previous_stage_name is not None,
                         box_axial_axis=axial_axis_after_transpose(manager.transpose_forward),
                         normalization=normalization,
                         strides=[list(s) for s in cm.pool_op_kernel_sizes], checkpoint_hashes=hashes)


def weights_hash(state_dict: dict) -> str:
    """SHA-256 over a state dict's names and values (to prove teachers stay unchanged)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
