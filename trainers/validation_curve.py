"""A learning curve on whole validation cases: the fold's validation cases predicted every few epochs.

nnU-Net's per-epoch "pseudo Dice" is measured on a few randomly drawn validation patches, so it jumps by several
Dice points from epoch to epoch even once a model has stopped learning. This mixin adds a curve without that sampling
noise: every ``validation_curve_every`` epochs (and after the last) the fold's validation cases are predicted whole
with nnU-Net's own sliding window (Gaussian weighting, no mirroring, in the training process, at the preprocessed
resolution) and their foreground Dice, counted over all of them together, is logged as
``val_cases_dice`` (``nan`` in the other epochs, so that the curve stays aligned with nnU-Net's per-epoch logs and
its progress plot). The curve is saved in the checkpoint with nnU-Net's logs.

The windows do not overlap (``validation_curve_tile_step`` 1.0): the same measure at every epoch is all a learning
curve needs, and nnU-Net's step 0.5 costs 3.4× the windows on the study's phantoms (27 instead of 8 per case; with
it, the 5 validation phantoms took about 13 s per measurement on 2 CPU cores, as long as two epochs of training).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nnunet_kd.metrics.voxel import pooled_dice

VALIDATION_CURVE_KEY = "val_cases_dice"


class ValidationCasesCurveMixin:
    """Combine with any ``nnUNetTrainer`` (before it in the bases)."""

    validation_curve_every: int = 2
    validation_curve_tile_step: float = 1.0

    def on_train_start(self):
        super().on_train_start()
        self.logger.get_checkpoint().setdefault(VALIDATION_CURVE_KEY, [])  # a resumed run already has it

    def on_epoch_end(self):
        epoch = self.current_epoch
        due = (epoch + 1) % self.validation_curve_every == 0 or epoch == self.num_epochs - 1
        value = self.validation_cases_dice() if due else math.nan
        if due:
            self.print_to_log_file(f"validation cases Dice (whole cases, sliding window): {value:.4f}")
        self.logger.log(VALIDATION_CURVE_KEY, value, epoch)
        super().on_epoch_end()  # saves the checkpoint with the value just logged

    def validation_cases_dice(self) -> float:
        """Foreground Dice of the fold's validation cases, predicted whole by the current network."""
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.utilities.label_handling.label_handling import convert_labelmap_to_one_hot

        _, validation_keys = self.do_split()
        if not validation_keys:
            return math.nan
        self.set_deep_supervision_enabled(False)
        self.network.eval()
        try:
            predictor = nnUNetPredictor(tile_step_size=self.validation_curve_tile_step, use_gaussian=True,
                                        use_mirroring=False,
                                        perform_everything_on_device=True, device=self.device, verbose=False,
                                        verbose_preprocessing=False, allow_tqdm=False)
            predictor.manual_initialization(self.network, self.plans_manager, self.configuration_manager, None,
                                            self.dataset_json, type(self).__name__, None)
            dataset = self.dataset_class(self.preprocessed_dataset_folder, validation_keys,
                                         folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage)
            pairs = []
            for key in dataset.identifiers:
                data, seg, seg_prev, _ = dataset.load_case(key)
                data = np.asarray(data[:])
                if self.is_cascaded:  # the box-guided teacher: its box channel, as nnU-Net's validation adds it
                    data = np.vstack((data, convert_labelmap_to_one_hot(np.asarray(seg_prev[:]),
                                                                        self.label_manager.foreground_labels,
                                                                        output_dtype=data.dtype)))
                with torch.no_grad():
                    logits = predictor.predict_sliding_window_return_logits(torch.from_numpy(data))
                prediction = self.label_manager.convert_logits_to_segmentation(logits.float()).cpu().numpy()
                pairs.append((np.asarray(seg[:])[0], prediction))
            return pooled_dice(pairs, self.label_manager.ignore_label)
        finally:
            self.set_deep_supervision_enabled(True)
            self.network.train()
