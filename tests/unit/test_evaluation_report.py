"""``nnunet_kd evaluate`` end to end on small synthetic folders: CSV, JSON, Markdown table, paired test, PNGs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_kd.cli import main
from nnunet_kd.evaluation.paired import wilcoxon_p

SPACING_XYZ = (0.8, 0.8, 2.5)
SHAPE = (8, 24, 24)


def _write(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _cube(z0: int) -> np.ndarray:
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[z0:z0 + 4, 8:12, 8:12] = 1  # 4 × 4 × 4 = 64 voxels
    return array


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """lung_001/002: student shifted one slice (Dice 48·2/128 = 0.75); nsclc_001: both perfect; nsclc_002: all empty.
    The teacher predicts the reference exactly."""
    empty = np.zeros(SHAPE, dtype=np.uint8)
    cases = {"lung_001": (_cube(2), _cube(3)), "lung_002": (_cube(2), _cube(3)),
             "nsclc_001": (_cube(2), _cube(2)), "nsclc_002": (empty, empty)}
    rng = np.random.default_rng(0)
    for case, (ref, student) in cases.items():
        _write(tmp_path / "ref" / f"{case}.nii.gz", ref)
        _write(tmp_path / "teacher" / f"{case}.nii.gz", ref)
        _write(tmp_path / "student" / f"{case}.nii.gz", student)
        ct = (rng.normal(-800, 50, SHAPE) + 800.0 * ref).astype(np.int16)
        _write(tmp_path / "images" / f"{case}_0000.nii.gz", ct)
    (tmp_path / "costs.json").write_text(json.dumps({"student": {"params": 10e6, "MACs": 2.5e9,
                                                                 "inference s/case": 1.23}}))
    return tmp_path


def _run(dataset: Path, *extra: str) -> int:
    return main(["evaluate", "--ref", str(dataset / "ref"), "--pred", f"teacher_box={dataset / 'teacher'}",
                 "--pred", str(dataset / "student"), "-o", str(dataset / "out"), *extra])


def _table_row(markdown: str, section: str, model: str) -> list[str]:
    block = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    for line in block.splitlines():
        if line.startswith(f"| {model} |"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row for {model} under {section}")


def test_report_files_and_tables(dataset: Path) -> None:
    assert _run(dataset, "--compare", "teacher_box", "student", "--images", str(dataset / "images"),
                "--worst", "2", "--costs", str(dataset / "costs.json")) == 0
    out = dataset / "out"
    rows = list(csv.DictReader((out / "cases.csv").open()))
    assert len(rows) == 8  # 2 models × 4 cases
    assert {r["model"] for r in rows} == {"teacher_box", "student"}

    markdown = (out / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| model | cases | Dice (%)"))
    assert header.endswith("| params | MACs | inference s/case |")
    student = _table_row(markdown, "all cases", "student")
    # student Dice over the 3 defined cases: 0.75, 0.75, 1.0 -> mean 0.8333; sample std
    # sqrt(((1/12)² · 2 + (1/6)²) / 2) = sqrt(0.0416667 / 2) = 0.14434; the both-empty case is missing: n=3/4
    assert student[1:3] == ["4", "83.33 ± 14.43 (n=3/4)"]
    assert student[-3:] == ["10 M", "2.5 G", "1.23"]
    teacher = _table_row(markdown, "all cases", "teacher_box")
    assert teacher[2] == "**100.00 ± 0.00 (n=3/4)**"  # best Dice in bold
    assert teacher[-3:] == ["–", "–", "–"]
    # HD95 of the student on lung: the cube shifted by one slice of 2.5 mm -> 2.50 mm in both cases
    assert _table_row(markdown, "lung", "student")[5] == "2.50 ± 0.00"
    assert "| student | 4 | 0 | 0 | 1 |" in markdown  # nsclc_002: both empty (not counted as "only … empty")
    assert "## Paired comparison: student − teacher_box" in markdown
    assert "| Dice (%) | 3 | -16.67 | -25.00 |" in markdown  # differences −0.25, −0.25, 0 (nan pair dropped)

    summary = json.loads((out / "summary.json").read_text())
    dice = summary["models"]["student"]["all cases"]["metrics"]["dice"]
    assert dice["n"] == 3 and dice["n_missing"] == 1
    group = summary["models"]["student"]["all cases"]
    assert (group["n_ref_empty"], group["n_pred_empty"], group["n_both_empty"]) == (1, 1, 1)
    assert group["metrics"]["hd95_mm"]["mean"] == pytest.approx(2.5 * 2 / 3)  # 2.5, 2.5, 0 mm; empty case missing
    assert summary["models"]["student"]["nsclc"]["metrics"]["hd95_mm"]["n_missing"] == 1
    assert summary["paired"]["metrics"]["dice"]["n_pairs"] == 3
    paired_rows = list(csv.DictReader((out / "paired_teacher_box_vs_student.csv").open()))
    assert [r["dice_diff"] for r in paired_rows] == ["-0.25", "-0.25", "0.0", "nan"]

    for png in ("metrics_boxplot.png", "dice_vs_volume.png", "worst/lung_001.png", "worst/lung_002.png"):
        _assert_not_blank(out / "plots" / png)
    assert not (out / "plots" / "worst" / "nsclc_001.png").exists()  # only the two worst cases are drawn


def _assert_not_blank(path: Path) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 200, path
    assert pixels[..., :3].std() > 0.02, f"{path} looks blank"


def test_missing_prediction_prints_one_error(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dataset / "student" / "lung_002.nii.gz").unlink()
    assert _run(dataset, "--no-plots") == 2
    assert "error: model student: no prediction for lung_002" in capsys.readouterr().err
    assert not (dataset / "out" / "report.md").exists()  # nothing half-written
    assert _run(dataset, "--no-plots", "--allow-missing") == 0
    assert "| student | lung_002 | no prediction |" in (dataset / "out" / "report.md").read_text()


def test_wilcoxon_p_values() -> None:
    # six positive differences: exact two-sided p = 2 · (1/2)^6 = 0.03125 (all signs positive is the extreme)
    assert wilcoxon_p([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx(0.03125)
    assert wilcoxon_p([0.0, 0.0, float("nan")]) == 1.0
    assert np.isnan(wilcoxon_p([float("nan")]))


def test_bad_options_print_one_error(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (dataset / "costs.json").write_text("{not json")
    assert _run(dataset, "--no-plots", "--costs", str(dataset / "costs.json")) == 2
    assert "costs file" in capsys.readouterr().err
    assert _run(dataset, "--no-plots", "--compare", "teacher_box", "nobody") == 2
    assert "--compare names unknown model 'nobody'" in capsys.readouterr().err
    assert _run(dataset, "--no-plots", "--table-metrics", "dice", "hausdorff") == 2
    assert "unknown metric 'hausdorff'" in capsys.readouterr().err


def test_table_metrics_choose_the_columns(dataset: Path) -> None:
    assert _run(dataset, "--no-plots", "--table-metrics", "dice", "hd95_mm") == 0
    markdown = (dataset / "out" / "report.md").read_text()
    assert "| model | cases | Dice (%) | HD95 (mm) |\n" in markdown
    assert _table_row(markdown, "lung", "student") == ["student", "2", "75.00 ± 0.00", "2.50 ± 0.00"]
    assert not (dataset / "out" / "plots").exists()
