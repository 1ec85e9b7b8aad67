"""The study's MKD Dice carried into the speed table (``benchmarks/studies/students_dice.py``)."""

from __future__ import annotations

import pytest
from _benchmark_scripts import load_benchmark_script


def load_script():
    return load_benchmark_script("studies/students_dice.py")


def row(student: str) -> dict:
    return {"student": student, "params": 1, "macs": 1, "cpu_s": 1.0, "cpu_ratio": 1.0, "gpu_s": None,
            "gpu_ratio": None, "dice_mkd": None, "dice_gap_to_full_mkd": None}


def test_dice_is_the_mean_of_per_seed_means_and_the_gap_is_to_the_full_mkd_student(tmp_path):
    # full MKD: seed 0 cases 0.8, 0.9 (mean 0.85), seed 1 case 0.75 -> (0.85 + 0.75) / 2 = 0.80
    # compact MKD: seed 0 0.7, 0.8 (0.75), seed 1 0.71 -> 0.73; gap 0.73 - 0.80 = -0.07
    study = {"rows": [
        {"model": "mkd_student", "seed": 0, "case": "a", "dice": 0.8},
        {"model": "mkd_student", "seed": 0, "case": "b", "dice": 0.9},
        {"model": "mkd_student", "seed": 1, "case": "a", "dice": 0.75},
        {"model": "compact_mkd_student", "seed": 0, "case": "a", "dice": 0.7},
        {"model": "compact_mkd_student", "seed": 0, "case": "b", "dice": 0.8},
        {"model": "compact_mkd_student", "seed": 1, "case": "a", "dice": 0.71},
        {"model": "so_student", "seed": 0, "case": "a", "dice": 0.1},
    ]}
    table = [row("3d_fullres"), row("plain_w0.5"), row("plain_w0.5 (onnxruntime)"), row("plain_w0.25")]
    filled = {r["student"]: r for r in load_script().with_study_dice(table, study)}
    assert filled["3d_fullres"]["dice_mkd"] == pytest.approx(0.80)
    assert filled["3d_fullres"]["dice_gap_to_full_mkd"] == pytest.approx(0.0)
    for name in ("plain_w0.5", "plain_w0.5 (onnxruntime)"):
        assert filled[name]["dice_mkd"] == pytest.approx(0.73)
        assert filled[name]["dice_gap_to_full_mkd"] == pytest.approx(-0.07)
    assert filled["plain_w0.25"]["dice_mkd"] is None and filled["plain_w0.25"]["dice_gap_to_full_mkd"] is None
    assert table[1]["dice_mkd"] is None  # the input table is not changed
    load_script().write_figure(list(filled.values()), tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 0
