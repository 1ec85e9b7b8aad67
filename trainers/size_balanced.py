"""Tumour-size-balanced sampling of training cases (mixed-supervision paper: "Images containing tumors of more rare
sizes were upsampled").

The mixin changes only which cases the training data loader draws: nnU-Net 2.8's ``nnUNetDataLoader`` samples
uniformly (with replacement) from its dataset's ``identifiers``, so each training identifier is listed as often as
its size-bin weight asks (see :mod:`nnunet_kd.size_balanced_sampling`). Validation cases are untouched. Combine it
with any trainer: ``class nnUNetTrainerMKDSizeBalanced(TumourSizeBalancedSamplingMixin, nnUNetTrainerMKD)``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_kd.size_balanced_sampling import (
    DEFAULT_BIN_EDGES_ML,
    DEFAULT_MAX_REPEATS,
    cached_tumour_volumes_ml,
    realised_probabilities,
    repeated_identifiers,
    sampling_weights,
    volume_bins,
    volume_cache_path,
)
from nnunet_kd.trainers.knowledge_distillation import nnUNetTrainerKD, nnUNetTrainerMKD
from nnunet_kd.trainers.safe_checkpoints import SafeCheckpointMixin


class TumourSizeBalancedSamplingMixin:
    """Training cases are drawn with equal probability per tumour-volume bin (bin 0: no tumour)."""

    tumour_volume_bin_edges_ml: tuple[float, ...] = DEFAULT_BIN_EDGES_ML
    max_case_repeats: int = DEFAULT_MAX_REPEATS

    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        cases = sorted(set(dataset_tr.identifiers))
        volumes = cached_tumour_volumes_ml(
            dataset_tr, cases, self.configuration_manager.spacing,
            volume_cache_path(self.preprocessed_dataset_folder_base, self.configuration_manager.data_identifier),
            ignore_label=self.label_manager.ignore_label, fingerprint=self._tumour_volume_fingerprint())
        bins = volume_bins(volumes, self.tumour_volume_bin_edges_ml)
        weights = sampling_weights(bins)
        dataset_tr.identifiers = repeated_identifiers(weights, self.max_case_repeats)
        self._log_size_balance(volumes, bins, weights, dataset_tr.identifiers)
        return dataset_tr, dataset_val

    def _tumour_volume_fingerprint(self) -> dict[str, Any]:
        """Stamp of the preprocessed data: re-preprocessing recreates the folder, which invalidates the cache."""
        return {"data_folder_mtime_ns": os.stat(self.preprocessed_dataset_folder).st_mtime_ns}

    def _log_size_balance(self, volumes: Mapping[str, float], bins: Mapping[str, int],
                          weights: Mapping[str, float], identifiers: Sequence[str]) -> None:
        realised = realised_probabilities(identifiers)
        repeats = Counter(identifiers)
        self.print_to_log_file(
            f"tumour-size-balanced sampling: bin edges {list(self.tumour_volume_bin_edges_ml)} ml (bin 0 = no "
            f"tumour), at most {self.max_case_repeats} repeats; {len(volumes)} cases listed {len(identifiers)} times")
        for b in sorted(set(bins.values())):
            members = [k for k in bins if bins[k] == b]
            self.print_to_log_file(f"  bin {b}: {len(members)} cases, target probability "
                                   f"{sum(weights[k] for k in members):.3f}, realised "
                                   f"{sum(realised[k] for k in members):.3f}")
        for k in sorted(volumes):
            self.print_to_log_file(f"  {k}: {volumes[k]:.2f} ml, bin {bins[k]}, weight {weights[k]:.4f}, "
                                   f"repeats {repeats[k]}, realised {realised[k]:.4f}")


class nnUNetTrainerSizeBalanced(TumourSizeBalancedSamplingMixin, SafeCheckpointMixin, nnUNetTrainer):
    """nnU-Net's default trainer with tumour-size-balanced case sampling."""


class nnUNetTrainerKDSizeBalanced(TumourSizeBalancedSamplingMixin, nnUNetTrainerKD):
    """Logit distillation (nnUNetTrainerKD) with tumour-size-balanced case sampling."""


class nnUNetTrainerMKDSizeBalanced(TumourSizeBalancedSamplingMixin, nnUNetTrainerMKD):
    """Multi-scale distillation (nnUNetTrainerMKD) with tumour-size-balanced case sampling."""
