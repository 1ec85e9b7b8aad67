"""Tumour-size-balanced case sampling: rare tumour sizes are drawn more often during training.

The mixed-supervision paper balances its training data by tumour size: "To counter the tumor size imbalance, we
balanced the train and validation sets with regard to tumor sizes. Images containing tumors of more rare sizes were
upsampled." Here every case falls into a bin of its total tumour volume (cases without tumour form bin 0), every
non-empty bin gets the same total sampling probability, shared equally by its cases, and the probabilities become
integer repetition counts of the case identifiers (nnU-Net's data loader draws uniformly from its identifier list,
so a case listed three times is drawn three times as often).

Volumes are read once from the preprocessed segmentations and cached in a JSON file beside the preprocessed data.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nnunet_kd.atomic import atomic_write_json

NO_TUMOUR_BIN = 0


def _sphere_volume_ml(diameter_cm: float) -> float:
    """Volume in ml (= cm^3) of a sphere of ``diameter_cm``."""
    return math.pi / 6.0 * diameter_cm**3


# Bin edges in ml: sphere-equivalent volumes of 2 cm and 4 cm diameter (~4.2 ml, ~33.5 ml), the TNM-8 T-descriptor
# boundaries T1b/T1c and T2a/T2b. Below 2 cm are the small nodules typical of MSD-Lung (hardest to find and to
# segment); above 4 cm the large masses typical of NSCLC-Radiomics and Lung-PET-CT-Dx; in between the rest. The
# volume is the case's total foreground, so several lesions (or nodes) in one case add up.
DEFAULT_BIN_EDGES_ML: tuple[float, ...] = tuple(round(_sphere_volume_ml(d), 1) for d in (2.0, 4.0))

# A case is listed at most this many times: one rare case must not dominate the epoch (and be over-fitted).
DEFAULT_MAX_REPEATS = 10


class CaseSource(Protocol):
    """What is needed of an nnU-Net dataset (``nnUNetDatasetBlosc2`` / ``nnUNetDatasetNumpy`` in 2.8)."""

    def load_case(self, identifier: str) -> tuple[Any, Any, Any, dict]:
        """``(data, seg, seg_prev, properties)``; ``seg`` is ``(1, *spatial)``, -1 outside the nonzero crop."""
        ...


# ---------------------------------------------------------------------------------------------------------- volumes
def foreground_voxels(seg: Any, ignore_label: int | None = None) -> int:
    """Number of voxels of ``seg`` (any shape, numpy/memmap/blosc2 array) with a label > 0, ``ignore_label`` excluded.

    nnU-Net marks voxels outside the nonzero crop with -1: they are not foreground.
    """
    labels = np.asarray(seg[...])
    foreground = labels > 0
    if ignore_label is not None:
        foreground &= labels != ignore_label
    return int(np.count_nonzero(foreground))


def voxel_volume_ml(spacing_zyx: Sequence[float]) -> float:
    """Volume of one voxel in ml for a spacing in mm (1 ml = 1000 mm^3); the axis order does not matter."""
    if not spacing_zyx or any(s <= 0 for s in spacing_zyx):
        raise ValueError(f"spacing must be positive millimetres, got {tuple(spacing_zyx)}")
    return float(np.prod(np.asarray(spacing_zyx, dtype=float))) / 1000.0


def tumour_volumes_ml(dataset: CaseSource, identifiers: Iterable[str], spacing_zyx: Sequence[float],
                      ignore_label: int | None = None) -> dict[str, float]:
    """Total foreground volume in ml per case, from the preprocessed segmentation at ``spacing_zyx`` (mm).

    Loads every case once through ``dataset.load_case``; duplicate identifiers are loaded once.
    """
    voxel_ml = voxel_volume_ml(spacing_zyx)
    volumes: dict[str, float] = {}
    for identifier in identifiers:
        if identifier not in volumes:
            _, seg, _, _ = dataset.load_case(identifier)
            volumes[identifier] = foreground_voxels(seg, ignore_label) * voxel_ml
    return volumes


# ---------------------------------------------------------------------------------------------------------- cache
def volume_cache_path(preprocessed_dataset_folder_base: str | Path, data_identifier: str) -> Path:
    """``<preprocessed>/DatasetXXX/tumour_volumes_<data_identifier>.json``.

    Beside, not inside, the configuration's data folder: nnU-Net infers the dataset class from the file endings in
    that folder and refuses a folder holding a foreign ending such as ``.json``.
    """
    return Path(preprocessed_dataset_folder_base) / f"tumour_volumes_{data_identifier}.json"


def _read_cache(cache_file: Path, fingerprint: Mapping[str, Any]) -> dict[str, float]:
    """Volumes stored in ``cache_file`` if it exists, parses and was computed with ``fingerprint``; else ``{}``."""
    try:
        stored = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("fingerprint") != json.loads(json.dumps(dict(fingerprint))):
        return {}
    volumes = stored.get("volumes_ml")
    return {str(k): float(v) for k, v in volumes.items()} if isinstance(volumes, dict) else {}


def cached_tumour_volumes_ml(dataset: CaseSource, identifiers: Iterable[str], spacing_zyx: Sequence[float],
                             cache_file: str | Path, ignore_label: int | None = None,
                             fingerprint: Mapping[str, Any] | None = None) -> dict[str, float]:
    """:func:`tumour_volumes_ml` through a JSON cache; returns the volumes of ``identifiers`` only.

    The cache is reused when it holds every requested identifier and was written for the same spacing, ignore label
    and ``fingerprint`` (JSON-serialisable; e.g. a stamp of the preprocessed data). Otherwise the missing cases are
    loaded (all of them after a fingerprint change) and the cache is rewritten atomically, keeping the entries of
    other cases (other folds).
    """
    cache_file = Path(cache_file)
    wanted = list(dict.fromkeys(identifiers))
    stamp = {"spacing_mm": [float(s) for s in spacing_zyx], "ignore_label": ignore_label, **(fingerprint or {})}
    cached = _read_cache(cache_file, stamp)
    missing = [i for i in wanted if i not in cached]
    if missing:
        cached.update(tumour_volumes_ml(dataset, missing, spacing_zyx, ignore_label))
        atomic_write_json(cache_file, {"fingerprint": stamp, "volumes_ml": dict(sorted(cached.items()))})
    return {i: cached[i] for i in wanted}


# ---------------------------------------------------------------------------------------------------------- weights
def volume_bins(volumes: Mapping[str, float], edges_ml: Sequence[float] = DEFAULT_BIN_EDGES_ML) -> dict[str, int]:
    """Bin per case: 0 without tumour (volume 0), else ``1 + #edges <= volume`` (1 = smallest tumours).

    ``edges_ml`` must be positive and strictly increasing; a volume equal to an edge goes to the upper bin.
    """
    edges = [float(e) for e in edges_ml]
    if any(e <= 0 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bin edges must be positive and strictly increasing, got {tuple(edges_ml)}")
    if any(v < 0 or not math.isfinite(v) for v in volumes.values()):
        raise ValueError("tumour volumes must be finite and non-negative")
    return {k: NO_TUMOUR_BIN if v == 0 else 1 + bisect.bisect_right(edges, v) for k, v in volumes.items()}


def sampling_weights(bins: Mapping[str, int]) -> dict[str, float]:
    """Probability per case: each non-empty bin gets ``1 / #bins``, shared equally by its cases (sum 1, all > 0)."""
    if not bins:
        raise ValueError("no cases to weight")
    sizes = Counter(bins.values())
    return {k: 1.0 / (len(sizes) * sizes[b]) for k, b in bins.items()}


def repetition_counts(weights: Mapping[str, float], max_repeats: int = DEFAULT_MAX_REPEATS) -> dict[str, int]:
    """Integer count per case ∝ weight: smallest weight -> 1, others ``round(w / w_min)``, at most ``max_repeats``.

    This approximates the weights by the nearest integer ratios (halves round up); the cap flattens them further.
    """
    if not weights:
        raise ValueError("no cases to repeat")
    if max_repeats < 1:
        raise ValueError(f"max_repeats must be >= 1, got {max_repeats}")
    if any(w <= 0 or not math.isfinite(w) for w in weights.values()):
        raise ValueError("weights must be finite and positive")
    smallest = min(weights.values())
    return {k: min(max_repeats, math.floor(w / smallest + 0.5)) for k, w in weights.items()}  # ratio >= 1


def repeated_identifiers(weights: Mapping[str, float], max_repeats: int = DEFAULT_MAX_REPEATS) -> list[str]:
    """Sorted identifiers, each repeated by :func:`repetition_counts`: uniform draws from it follow the weights.

    This approximates the weights to the nearest integer ratio (smallest weight = 1 repetition, at most
    ``max_repeats``), so the realised probabilities are ``count / sum(counts)``, not exactly ``weights``.
    """
    counts = repetition_counts(weights, max_repeats)
    return [k for k in sorted(counts) for _ in range(counts[k])]


def realised_probabilities(identifiers: Sequence[str]) -> dict[str, float]:
    """Probability per case of a uniform draw from ``identifiers`` (with repetitions)."""
    counts = Counter(identifiers)
    return {k: n / len(identifiers) for k, n in sorted(counts.items())}
