"""Every shipped trainer checks its own checkpoint before nnU-Net loads it.

nnU-Net's ``load_checkpoint`` (``nnUNetv2_train --c`` and ``--val``) unpickles with ``weights_only=False``: a
``checkpoint_latest.pth`` carrying a pickle payload would run it. :class:`SafeCheckpointMixin` first loads the file
with :func:`~nnunet_kd.integrity.checkpoints.load_checkpoint` (``weights_only=True``) and stops with one line if it
holds anything but tensors and plain data, or is cut off; then nnU-Net loads it as usual.
"""

from __future__ import annotations

from nnunet_kd.errors import exit_on_user_error
from nnunet_kd.integrity.checkpoints import load_checkpoint


class SafeCheckpointMixin:
    """Combine with any ``nnUNetTrainer``: ``class T(SafeCheckpointMixin, nnUNetTrainer)``.

    After :meth:`load_checkpoint`, ``self.checked_checkpoint`` holds the checked contents (for subclasses that keep
    more than nnU-Net in the file, such as the distillation adapters).
    """

    checked_checkpoint: dict | None = None

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        checkpoint = filename_or_checkpoint
        if not isinstance(checkpoint, dict):
            with exit_on_user_error(type(self).__name__):
                checkpoint = load_checkpoint(filename_or_checkpoint, f"{type(self).__name__}'s checkpoint")
        self.checked_checkpoint = checkpoint
        super().load_checkpoint(filename_or_checkpoint)
