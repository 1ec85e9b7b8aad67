"""PNG plots of an evaluation: box/strip plots per metric, Dice against tumour volume, worst-case overlays.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never ``pyplot``, so no display
and no global backend state are needed. Undefined values (``nan``) are left out of the plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnunet_kd.atomic import atomic_path
from nnunet_kd.errors import InputError
from nnunet_kd.evaluation.table import METRIC_TITLES

Row = dict[str, Any]
PLOTTED_METRICS: tuple[str, ...] = ("dice", "iou", "hd95_mm", "precision", "recall", "object_f1", "dsc_tp")
CT_WINDOW_HU = (-1000.0, 400.0)  # lung window for the overlay background


def _save(figure: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _values(rows: Sequence[Row], model: str, metric: str) -> np.ndarray:
    values = np.asarray([float(r[metric]) for r in rows if r["model"] == model], dtype=float)
    scale = 1.0 if metric == "hd95_mm" else 100.0
    return values[~np.isnan(values)] * scale


def metric_boxplots(rows: Sequence[Row], models: Sequence[str], path: Path,
                    metrics: Sequence[str] = PLOTTED_METRICS, seed: int = 0) -> Path:
    """One panel per metric: a box per model with the individual cases as jittered points."""
    from matplotlib.figure import Figure

    columns = min(4, len(metrics))
    rows_of_panels = int(np.ceil(len(metrics) / columns))
    figure = Figure(figsize=(3.2 * columns + 0.4 * len(models), 3.2 * rows_of_panels), layout="constrained")
    axes = figure.subplots(rows_of_panels, columns, squeeze=False).ravel()
    rng = np.random.default_rng(seed)
    for axis, metric in zip(axes, metrics, strict=False):
        data = [_values(rows, model, metric) for model in models]
        positions = np.arange(1, len(models) + 1)
        shown = [(p, d) for p, d in zip(positions, data, strict=True) if d.size]
        if shown:
            axis.boxplot([d for _, d in shown], positions=[p for p, _ in shown], widths=0.6, showfliers=False)
            for position, values in shown:
                jitter = rng.uniform(-0.15, 0.15, size=values.size)
                axis.scatter(position + jitter, values, s=10, alpha=0.6, zorder=3)
        axis.set_xticks(positions, list(models), rotation=30, ha="right")
        axis.set_xlim(0.4, len(models) + 0.6)
        axis.set_title(METRIC_TITLES.get(metric, metric))
        axis.grid(axis="y", alpha=0.3)
    for axis in axes[len(metrics):]:
        axis.set_visible(False)
    return _save(figure, path)


def dice_vs_volume(rows: Sequence[Row], models: Sequence[str], path: Path) -> Path:
    """Scatter of Dice (%) against reference tumour volume (cm³, log axis), one colour per model.

    Cases with an empty reference (no volume) or an undefined Dice are left out; the title says how many.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axis = figure.subplots()
    left_out = 0
    for model in models:
        model_rows = [r for r in rows if r["model"] == model]
        usable = [r for r in model_rows if float(r["ref_volume_cm3"]) > 0 and not np.isnan(float(r["dice"]))]
        left_out += len(model_rows) - len(usable)
        axis.scatter([float(r["ref_volume_cm3"]) for r in usable], [100.0 * float(r["dice"]) for r in usable],
                     s=18, alpha=0.7, label=model)
    axis.set_xscale("log")
    axis.set_xlabel("reference tumour volume (cm³)")
    axis.set_ylabel("Dice (%)")
    axis.set_ylim(-2, 102)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    axis.set_title("Dice vs tumour volume" + (f" ({left_out} case-model pairs without volume or Dice left out)"
                                              if left_out else ""), fontsize="medium")
    return _save(figure, path)


def worst_cases(rows: Sequence[Row], models: Sequence[str], count: int) -> list[str]:
    """The ``count`` cases with the lowest Dice averaged over ``models`` (cases with no defined Dice left out)."""
    dice: dict[str, list[float]] = {}
    for row in rows:
        if row["model"] in models and not np.isnan(float(row["dice"])):
            dice.setdefault(row["case"], []).append(float(row["dice"]))
    return sorted(dice, key=lambda case: (float(np.mean(dice[case])), case))[:count]


def find_image(images_folder: Path, case: str, file_ending: str) -> Path:
    """The CT of ``case``: nnU-Net's ``<case>_0000<ending>`` or plain ``<case><ending>``."""
    for name in (f"{case}_0000{file_ending}", f"{case}{file_ending}"):
        if (images_folder / name).is_file():
            return images_folder / name
    raise InputError(f"case {case}: no image {case}_0000{file_ending} or {case}{file_ending} in {images_folder}")


def case_overlay(case: str, image: np.ndarray, spacing: Sequence[float], reference: np.ndarray,
                 predictions: Mapping[str, np.ndarray], path: Path, margin: int = 24) -> Path:
    """One panel per model: the axial CT slice where the reference is largest (ties: where reference and
    predictions together cover most), reference contour (green) and prediction contour (red), cropped around both.

    Args:
        image: CT in HU, ``(z, y, x)``.
        spacing: ``(z, y, x)`` in mm (sets the in-plane aspect ratio).
        reference: boolean tumour mask ``(z, y, x)``.
        predictions: ``{model: boolean mask (z, y, x)}``.
    """
    from matplotlib.figure import Figure

    union = reference.copy()
    for mask in predictions.values():
        union |= mask
    reference_area, union_area = reference.sum(axis=(1, 2)), union.sum(axis=(1, 2))
    z = int(np.lexsort((union_area, reference_area))[-1])  # largest reference area, ties: largest union
    rows_hit = np.flatnonzero(union[z].any(axis=1))
    cols_hit = np.flatnonzero(union[z].any(axis=0))
    if rows_hit.size:
        r0, r1 = max(rows_hit[0] - margin, 0), min(rows_hit[-1] + margin + 1, image.shape[1])
        c0, c1 = max(cols_hit[0] - margin, 0), min(cols_hit[-1] + margin + 1, image.shape[2])
    else:
        r0, r1, c0, c1 = 0, image.shape[1], 0, image.shape[2]
    crop = np.s_[r0:r1, c0:c1]
    figure = Figure(figsize=(3.4 * len(predictions), 3.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(predictions)))
    for axis, (model, prediction) in zip(axes, predictions.items(), strict=True):
        axis.imshow(image[z][crop], cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1],
                    aspect=spacing[1] / spacing[2], interpolation="nearest")
        for mask, colour, width in ((reference[z][crop], "lime", 2.4), (prediction[z][crop], "red", 1.0)):
            if mask.any() and not mask.all():  # reference drawn wider so that it shows under an exact prediction
                axis.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=width)
        axis.set_title(f"{model}", fontsize="small")
        axis.set_axis_off()
    figure.suptitle(f"{case}, slice z={z}: reference green, prediction red", fontsize="small")
    return _save(figure, path)
