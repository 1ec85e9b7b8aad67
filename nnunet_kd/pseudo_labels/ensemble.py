"""Combine teacher outputs: fold averaging inside a teacher, weighted probability averaging across teachers.

Probabilities are ``(C, z, y, x)`` arrays (channel ``c`` = label value ``c``, as nnU-Net exports them for plain,
non-region label sets); every array of one case has the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnunet_kd.errors import ConfigurationError

_EPS = 1e-8


def normalised_weights(weights: Sequence[float]) -> list[float]:
    """Weights scaled to sum to 1.

    Raises:
        ConfigurationError: a weight is negative or not finite, or all are zero.
    """
    values = [float(w) for w in weights]
    if not values or any(not np.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
        raise ConfigurationError(f"teacher weights must be finite, >= 0 and not all zero, got {values}")
    total = sum(values)
    return [w / total for w in values]


def fold_average_log_probabilities(fold_logits: Sequence[np.ndarray]) -> np.ndarray:
    """Average the softmax of several folds' logits and return it as log-probabilities.

    nnU-Net averages the *logits* of folds; we average probabilities. The result goes back into nnU-Net's export
    (which resamples logits and applies softmax): softmax(log p) = p, so one export per teacher yields the average.
    A single fold is returned unchanged, so its export equals ``nnUNetv2_predict --save_probabilities``.

    Args:
        fold_logits: one ``(C, *spatial)`` logit array per fold.

    Returns:
        ``(C, *spatial)`` float32.
    """
    if len(fold_logits) == 1:
        return np.asarray(fold_logits[0], dtype=np.float32)
    mean = np.zeros(np.shape(fold_logits[0]), dtype=np.float32)
    for logits in fold_logits:
        mean += softmax(np.asarray(logits, dtype=np.float32))
    mean /= len(fold_logits)
    return np.log(np.maximum(mean, _EPS))


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def hard_labels(probabilities: np.ndarray) -> np.ndarray:
    """``(C, z, y, x)`` probabilities -> ``(z, y, x)`` uint8 label map (argmax; ties go to the lower label).

    One comparison per class on contiguous planes: ``np.argmax(axis=0)`` walks the class axis with a stride and is
    about ten times slower on CT-sized volumes.
    """
    labels = np.zeros(probabilities.shape[1:], dtype=np.uint8)
    best = probabilities[0].copy()
    for c in range(1, probabilities.shape[0]):
        higher = probabilities[c] > best
        labels[higher] = c
        np.maximum(best, probabilities[c], out=best)
    return labels
