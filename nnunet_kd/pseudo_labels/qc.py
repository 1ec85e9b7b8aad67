"""Visual QC: axial slices with the CT, the box outlines and the pseudo-label contour, collected in one HTML page."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from nnunet_kd.atomic import atomic_path, atomic_write_text
from nnunet_kd.pseudo_labels.provenance import CaseRecord


def qc_slices(labels: np.ndarray, box_mask: np.ndarray | None, max_slices: int = 3) -> list[int]:
    """Axial slices worth showing, in this order of priority: the middle slice of each box, the slice with the most
    label voxels outside the boxes, the largest label slice, then the first and last slice of each box; the middle
    slice of the volume when there is nothing.

    Args:
        labels: ``(z, y, x)`` label map.
        box_mask: ``(z, y, x)`` binary box mask or ``None``.
        max_slices: at most this many slices.

    Returns:
        Sorted slice indices.
    """
    chosen: list[int] = []
    ends: list[int] = []

    def per_slice(mask: np.ndarray) -> np.ndarray:
        return mask.reshape(mask.shape[0], -1).sum(axis=1)

    if box_mask is not None and box_mask.any():
        from nnunet_kd.pseudo_labels.provenance import box_components

        components, _ = box_components(box_mask)
        for found in ndimage.find_objects(components):
            z0, z1 = found[0].start, found[0].stop - 1
            chosen.append((z0 + z1) // 2)
            ends += [z0, z1]
        outside = (labels > 0) & ~(box_mask > 0)
        if outside.any():
            chosen.append(int(np.argmax(per_slice(outside))))
    if labels.any():
        chosen.append(int(np.argmax(per_slice(labels > 0))))
    unique = list(dict.fromkeys(chosen + ends))[:max_slices]
    return sorted(unique) or [labels.shape[0] // 2]


def render_panel(image: np.ndarray, labels: np.ndarray, box_mask: np.ndarray | None, slices: list[int],
                 target: str | os.PathLike, title: str, ignore_label: int | None = None) -> None:
    """One PNG with a column per axial slice: CT (1st-99th percentile window), boxes (yellow), label (red), voxels
    with the ignore label (cyan, filled half-transparent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high = np.percentile(image, [1, 99])
    figure, axes = plt.subplots(1, len(slices), figsize=(3.2 * len(slices), 3.6), squeeze=False)
    for axis, z in zip(axes[0], slices, strict=True):
        axis.imshow(image[z], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        if box_mask is not None and box_mask[z].any():
            axis.contour(box_mask[z].astype(float), levels=[0.5], colors="yellow", linewidths=1.0)
        ignored = labels[z] == ignore_label if ignore_label is not None else np.zeros_like(labels[z], dtype=bool)
        tumour = (labels[z] > 0) & ~ignored
        if ignored.any():
            axis.imshow(np.ma.masked_where(~ignored, ignored.astype(float)), cmap="cool", vmin=0, vmax=1, alpha=0.5,
                        interpolation="nearest")
        if tumour.any():
            axis.contour(tumour.astype(float), levels=[0.5], colors="red", linewidths=1.0)
        axis.set_title(f"z = {z}", fontsize=9)
        axis.set_axis_off()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, dpi=80, format="png")
    plt.close(figure)


def choose_qc_cases(records: list[CaseRecord], sample: int, seed: int) -> list[CaseRecord]:
    """Every flagged pseudo-labelled case, plus ``sample`` of the others drawn with ``seed`` (in table order)."""
    pseudo = [r for r in records if r.kind == "pseudo"]
    flagged = [r for r in pseudo if r.flags]
    others = [r for r in pseudo if not r.flags]
    rng = np.random.default_rng(seed)
    picked = set(rng.choice(len(others), size=min(sample, len(others)), replace=False).tolist()) if others else set()
    chosen = {r.case for r in flagged} | {others[i].case for i in picked}
    return [r for r in pseudo if r.case in chosen]


def write_html(records: list[CaseRecord], images: dict[str, str], target: str | os.PathLike, title: str) -> None:
    """The QC page: one row per case (name, source, flags, box fill, panel)."""
    rows = []
    for r in records:
        fill = ", ".join(f"{f:.2f}" for f in r.box_fill) or "-"
        flags = ", ".join(r.flags) or "-"
        rows.append(
            f"<tr><td>{html.escape(r.case)}<br><small>{html.escape(r.source_dataset)}/{html.escape(r.source_case)}"
            f"</small></td><td class='{'flag' if r.flags else ''}'>{html.escape(flags)}</td><td>{fill}</td>"
            f"<td><img src='{html.escape(images[r.case])}' alt='{html.escape(r.case)}'></td></tr>"
        )
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>\n"
        "<style>body{font-family:sans-serif} td{vertical-align:top;padding:4px;border-bottom:1px solid #ccc}"
        " .flag{color:#b00}</style></head><body>\n<h1>" + html.escape(title) + "</h1>\n"
        "<p>Yellow: box outlines. Red: pseudo-label contour. Flagged cases first listed by name; unflagged cases are a "
        "random sample.</p>\n<table><tr><th>case</th><th>flags</th><th>box fill</th><th>axial slices</th></tr>\n"
        + "\n".join(rows) + "\n</table></body></html>\n"
    )
    atomic_write_text(target, page)


def write_qc_report(folder: Path, records: list[CaseRecord], sample: int, seed: int, file_ending: str,
                    ignore_label: int | None = None) -> Path:
    """Render the panels of the chosen cases from the dataset's files and write ``qc/index.html`` (voxels with
    ``ignore_label`` shown in their own colour)."""
    import SimpleITK as sitk

    from nnunet_kd.pseudo_labels import layout

    chosen = choose_qc_cases(records, sample, seed)
    images: dict[str, str] = {}
    for r in chosen:
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / layout.IMAGES / f"{r.case}_0000{file_ending}")))
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / layout.LABELS / f"{r.case}{file_ending}")))
        box_file = folder / layout.BOXES / f"{r.case}{file_ending}"
        boxes = sitk.GetArrayFromImage(sitk.ReadImage(str(box_file))) > 0 if box_file.is_file() else None
        name = f"{r.case}.png"
        tumour = np.where(labels == ignore_label, 0, labels) if ignore_label is not None else labels
        render_panel(image, labels, boxes, qc_slices(tumour, boxes), folder / layout.QC / name,
                     f"{r.case}: {', '.join(r.flags) or 'no flags'}", ignore_label)
        images[r.case] = name
    target = folder / layout.QC / "index.html"
    write_html(chosen, images, target, f"Pseudo-label QC: {folder.name}")
    return target
