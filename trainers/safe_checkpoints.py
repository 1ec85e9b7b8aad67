"""Every shipped trainer checks its own checkpoint before nnU-Net loads it, and writes it under a temporary name.

nnU-Net's ``load_checkpoint`` (``nnUNetv2_train --c`` and ``--val``) unpickles with ``weights_only=False``: a
``checkpoint_latest.pth`` carrying a pickle payload would run it. :class:`SafeCheckpointMixin` first loads the file
with :func:`~nnunet_kd.integrity.checkpoints.load_checkpoint` (``weights_only=True``) and stops with one line if it
holds anything but tensors and plain data, or is cut off; then nnU-Net loads it as usual. nnU-Net's
``save_checkpoint`` writes the file in place, so an interruption while saving leaves a cut-off checkpoint; the mixin
lets it write a hidden temporary file that is renamed once complete. The same holds for ``progress.png``, which
nnU-Net's logger redraws in place every epoch (:class:`ProgressPlotWrittenWhole`).
"""

# no ``from __future__ import annotations``: nnU-Net's trainer signature (with real annotations) is kept exactly
import os
import tempfile
from pathlib import Path

import torch

from nnunet_kd.atomic import atomic_path
from nnunet_kd.errors import exit_on_user_error
from nnunet_kd.integrity.checkpoints import load_checkpoint


class ProgressPlotWrittenWhole:
    """nnU-Net's ``MetaLogger`` with ``plot_progress_png`` drawn under a temporary name and renamed; everything else
    is the wrapped logger's."""

    def __init__(self, logger):
        self.__dict__["wrapped"] = logger

    def __getattr__(self, name):
        return getattr(self.__dict__["wrapped"], name)

    def __setattr__(self, name, value):
        setattr(self.__dict__["wrapped"], name, value)

    def plot_progress_png(self, output_folder: str) -> None:
        with tempfile.TemporaryDirectory(dir=output_folder, prefix=".progress.tmp-") as tmp:
            self.wrapped.plot_progress_png(tmp)
            os.replace(Path(tmp) / "progress.png", Path(output_folder) / "progress.png")


class SafeCheckpointMixin:
    """Combine with any ``nnUNetTrainer``: ``class T(SafeCheckpointMixin, nnUNetTrainer)``.

    After :meth:`load_checkpoint`, ``self.checked_checkpoint`` holds the checked contents (for subclasses that keep
    more than nnU-Net in the file, such as the distillation adapters).
    """

    checked_checkpoint: dict | None = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # nnU-Net records these names (my_init_kwargs)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.logger = ProgressPlotWrittenWhole(self.logger)

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written under a temporary name, completed by :meth:`add_to_checkpoint`, renamed."""
        if self.local_rank != 0 or self.disable_checkpointing:
            super().save_checkpoint(filename)
            return
        with atomic_path(filename) as tmp:
            super().save_checkpoint(str(tmp))
            self.add_to_checkpoint(tmp)

    def add_to_checkpoint(self, checkpoint_file: Path) -> None:
        """Hook for subclasses that keep more than nnU-Net in the checkpoint (called before the rename)."""

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        checkpoint = filename_or_checkpoint
        if not isinstance(checkpoint, dict):
            with exit_on_user_error(type(self).__name__):
                checkpoint = load_checkpoint(filename_or_checkpoint, f"{type(self).__name__}'s checkpoint")
        self.checked_checkpoint = checkpoint
        super().load_checkpoint(filename_or_checkpoint)
