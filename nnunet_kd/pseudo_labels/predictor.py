"""Teacher probabilities from nnU-Net's own predictor (the only module here that imports torch and nnU-Net).

Per case and teacher this does what ``nnUNetPredictor.predict_from_files_sequential`` does: the configuration's
preprocessor (with the box mask as the previous-stage segmentation of a box-guided teacher, one-hot stacked onto the
image), ``predict_logits_from_preprocessed_data`` (sliding window, Gaussian weighting, optional mirroring TTA) and
``convert_predicted_logits_to_segmentation_with_correct_shape`` (back to the original geometry). The only change:
folds are run one at a time and their *probabilities* averaged (nnU-Net averages logits); see
:func:`nnunet_kd.pseudo_labels.ensemble.fold_average_log_probabilities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from nnunet_kd.pseudo_labels.ensemble import fold_average_log_probabilities
from nnunet_kd.pseudo_labels.teacher_requests import Teacher


class ProbabilityModel(Protocol):
    """Anything that turns one case's image files (and box mask) into probabilities in the original geometry."""

    name: str
    box_guided: bool

    def predict(self, images: Sequence[Path], boxes: Path | None) -> np.ndarray:
        """``(C, z, y, x)`` float32 probabilities, SimpleITK array order of the images."""


class NnunetTeacher:
    """A trained teacher loaded through ``nnUNetPredictor.initialize_from_trained_model_folder``, after every fold's
    checkpoint passed :func:`~nnunet_kd.integrity.checkpoints.load_checkpoint` (no code, not cut off).

    Args:
        teacher: the resolved teacher.
        device: ``"cuda"``, ``"cpu"`` or ``"mps"``.
        use_mirroring: test-time augmentation by mirroring (nnU-Net's default; ``--disable-tta`` turns it off).
        tile_step_size: sliding-window step as a fraction of the patch size (nnU-Net's default 0.5).
    """

    def __init__(self, teacher: Teacher, device: str = "cuda", use_mirroring: bool = True,
                 tile_step_size: float = 0.5):
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        from nnunet_kd.integrity.checkpoints import load_checkpoint

        torch_device = torch.device(device)
        self.name = teacher.name
        self.box_guided = teacher.box_guided
        self.predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                         perform_everything_on_device=torch_device.type == "cuda", device=torch_device,
                                         verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        folds = tuple(f if f == "all" else int(f) for f in teacher.folds)
        for fold in folds:  # nnU-Net loads with weights_only=False: only files that hold no code get that far
            load_checkpoint(teacher.folder / f"fold_{fold}" / teacher.spec.checkpoint, f"teacher {teacher.name}")
        self.predictor.initialize_from_trained_model_folder(str(teacher.folder), folds, teacher.spec.checkpoint)
        self.fold_parameters = list(self.predictor.list_of_parameters)
        self.preprocessor = self.predictor.configuration_manager.preprocessor_class(verbose=False)

    def predict(self, images: Sequence[Path], boxes: Path | None) -> np.ndarray:
        import torch
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
        from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

        p = self.predictor
        data, seg, properties = self.preprocessor.run_case([str(f) for f in images],
                                                           str(boxes) if self.box_guided else None,
                                                           p.plans_manager, p.configuration_manager, p.dataset_json)
        if self.box_guided:
            one_hot = convert_labelmap_to_one_hot(seg[0], p.label_manager.foreground_labels, data.dtype)
            data = np.vstack((data, one_hot))
        data = torch.from_numpy(data)
        if len(self.fold_parameters) == 1:  # exactly nnU-Net's path (its fp16 logits included)
            logits = p.predict_logits_from_preprocessed_data(data)
        else:
            fold_logits = []
            try:
                for parameters in self.fold_parameters:
                    p.list_of_parameters = [parameters]
                    fold_logits.append(p.predict_logits_from_preprocessed_data(data).float().numpy())
            finally:
                p.list_of_parameters = self.fold_parameters
            logits = torch.from_numpy(fold_average_log_probabilities(fold_logits))
        _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, p.plans_manager, p.configuration_manager, p.label_manager, properties, return_probabilities=True)
        return np.asarray(probabilities, dtype=np.float32)
