"""The students' Dice after MKD from the phantom study, into the speed table (``students.json``), and Dice against CPU
time.

    python benchmarks/studies/students_dice.py benchmarks/results/study.json benchmarks/results/students.json \
        [--figure benchmarks/results/students_dice_cpu.png]

The study trains two MKD students of the speed table's families on its phantoms: the full student
(``mkd_student``, the network the table calls ``3d_fullres``) and the half-width ``PlainConvUNet``
(``compact_mkd_student``: ``add-student --kind plain --width 0.5``, the table's ``plain_w0.5``, which ONNX Runtime
runs unchanged). The study's networks are those of its phantom plan, not the CT plan the table times: what carries
over is the width relative to the full student. ``dice_mkd`` is the mean over seeds of the per-seed mean test Dice
(a fraction), ``dice_gap_to_full_mkd`` that minus the full MKD student's; the other rows keep ``null``. The file is
rewritten in place (temporary name, then rename).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from nnunet_kd.atomic import atomic_write_json
from nnunet_kd.evaluation.study_statistics import seed_means

#: speed-table student -> the study model that is that network trained with MKD
STUDY_MODELS = {"3d_fullres": "mkd_student", "plain_w0.5": "compact_mkd_student",
                "plain_w0.5 (onnxruntime)": "compact_mkd_student"}
FULL = "3d_fullres"


def with_study_dice(students: list[dict], study: dict) -> list[dict]:
    """A copy of the speed table with ``dice_mkd`` and ``dice_gap_to_full_mkd`` of the students the study trained."""
    models = {row["model"] for row in study["rows"]}
    dice = {name: seed_means(study["rows"], model, "dice")[0] for name, model in STUDY_MODELS.items()
            if model in models}
    full = dice.get(FULL, math.nan)
    rows = []
    for row in students:
        row = dict(row)
        if row["student"] in dice:
            row["dice_mkd"] = round(dice[row["student"]], 4)
            row["dice_gap_to_full_mkd"] = None if math.isnan(full) else round(dice[row["student"]] - full, 4)
        rows.append(row)
    return rows


def write_figure(students: list[dict], path: Path) -> None:
    """Dice after MKD (%) against sliding-window CPU time as a share of ``3d_fullres``, one point per student."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 4.5))
    points = [row for row in students if row["dice_mkd"] is not None and row["cpu_ratio"] is not None]
    for i, row in enumerate(points):
        x, y = row["cpu_ratio"] * 100, row["dice_mkd"] * 100
        axis.scatter(x, y)
        axis.annotate(row["student"], (x, y), fontsize=8, textcoords="offset points", xytext=(4, 6 - 14 * (i % 2)))
    dice = [row["dice_mkd"] * 100 for row in points] or [0.0]
    axis.set_ylim(min(dice) - 5, max(dice) + 5)  # a few points of Dice are not magnified into a cliff
    axis.axvline(33, linestyle=":", color="grey")
    axis.set_xlabel("CPU sliding-window time (% of 3d_fullres)")
    axis.set_ylabel("test Dice after MKD (%), phantom study")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="study.json written by study.py")
    parser.add_argument("students", type=Path, help="students.json written by bench_student_inference.py")
    parser.add_argument("--figure", type=Path, default=None, help="write the Dice-vs-CPU figure (PNG) here")
    args = parser.parse_args()
    rows = with_study_dice(json.loads(args.students.read_text()), json.loads(args.study.read_text()))
    atomic_write_json(args.students, rows, indent=1)
    for row in rows:
        if row["dice_mkd"] is not None:
            print(f"{row['student']:26s} CPU {row['cpu_ratio'] * 100:5.1f} %  Dice {row['dice_mkd'] * 100:.1f} %  "
                  f"gap {row['dice_gap_to_full_mkd'] * 100:+.1f} points")
    if args.figure:
        write_figure(rows, args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
