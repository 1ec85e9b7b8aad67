"""The one place that adds per-epoch keys to nnU-Net's logger and plots them.

nnU-Net's ``LocalLogger`` only accepts keys that exist in its ``my_fantastic_logging`` dict and expects one value per
epoch (its progress plot uses the shortest list). Extra keys are registered once here, logged once per epoch, saved
in the checkpoint with the rest of the log (so ``--c`` resumes them), and drawn in ``progress_kd.png`` beside
nnU-Net's ``progress.png`` (whose plot is fixed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from nnunet_kd.atomic import atomic_path


def register_keys(logger, keys: Iterable[str]) -> None:
    """Add empty per-epoch lists for ``keys`` to an nnU-Net ``MetaLogger`` (existing keys are kept)."""
    log = logger.local_logger.my_fantastic_logging
    for key in keys:
        log.setdefault(key, [])


def log_epoch_values(logger, values: dict[str, float], epoch: int) -> None:
    """Log one value per key for ``epoch`` (keys are registered on the fly, e.g. after resuming)."""
    register_keys(logger, values)
    log = logger.local_logger.my_fantastic_logging
    for key, value in values.items():
        if len(log[key]) < epoch:  # a key that appeared late (e.g. resumed run): pad earlier epochs
            log[key].extend([float("nan")] * (epoch - len(log[key])))
        logger.log(key, float(value), epoch)


def plot_kd_progress(logger, keys: list[str], output_folder: str | os.PathLike) -> None:
    """``progress_kd.png``: the loss components and teacher weights per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = logger.local_logger.my_fantastic_logging
    losses = [k for k in keys if not k.startswith("kd_weight_") and log.get(k)]
    weights = [k for k in keys if k.startswith("kd_weight_") and log.get(k)]
    fig, axes = plt.subplots(2, 1, figsize=(10, 8))
    for key in losses:
        axes[0].plot(range(len(log[key])), log[key], label=key)
    axes[0].set(xlabel="epoch", ylabel="loss component", title="distillation losses")
    for key in weights:
        axes[1].plot(range(len(log[key])), log[key], label=key)
    axes[1].set(xlabel="epoch", ylabel="mean weight", title="teacher weights", ylim=(0, 1))
    for ax in axes:
        if ax.lines:
            ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(os.path.join(output_folder, "progress_kd.png")) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
