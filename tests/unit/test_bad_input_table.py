"""Every command against bad input, as a table: one clear line, the right exit code, nothing written, inputs intact.

Each row builds its inputs in a fresh folder (with nnU-Net's three folder variables pointing into it), snapshots every
file (path and SHA-256), runs ``nnunet_kd <command> ...`` in-process as a user would, and checks that the command
exits with the row's code, prints exactly one ``error:`` line matching the row's pattern (no traceback), and leaves
the folder byte-identical: no output, no partial output, no temporary file, no input changed.
The rows of faults that a command survives with a per-case report (a damaged case excluded by a converter) are in
``test_reliability.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from test_reliability import Payload, cut_off, label, raw_dataset, run_cli, snapshot, write_image

RAW = "nnUNet_raw"
PRE = "nnUNet_preprocessed"
RES = "nnUNet_results"


@dataclass(frozen=True)
class Row:
    """One bad input: ``prepare(folder)`` builds the inputs and returns the command line (without ``nnunet_kd``)."""

    name: str
    prepare: Callable[[Path], list[str]]
    message: str
    code: int = 2


# ---------------------------------------------------------------- inputs


def then(prepare: Callable[[Path], list[str]], *changes: Callable[[Path], object]) -> Callable[[Path], list[str]]:
    """``prepare``, then each of ``changes`` (the fault), in that order."""

    def build(w: Path) -> list[str]:
        argv = prepare(w)
        for change in changes:
            change(w)
        return argv

    return build


def images(folder: Path) -> Path:
    """Two CT images named as nnU-Net's inputs (``c0_0000.nii.gz``, ``c1_0000.nii.gz``)."""
    for i in range(2):
        write_image(folder / f"c{i}_0000.nii.gz", label(i).astype(np.int16))
    return folder


def two_cases(folder: Path, value: Callable[[int], np.ndarray] = label) -> Path:
    for i in range(2):
        write_image(folder / f"c{i}.nii.gz", value(i))
    return folder


def evaluation(w: Path) -> tuple[Path, Path]:
    return two_cases(w / "ref"), two_cases(w / "pred")


def evaluate_with(change: Callable[[Path, Path], None], *extra: str) -> Callable[[Path], list[str]]:
    def prepare(w: Path) -> list[str]:
        ref, pred = evaluation(w)
        change(ref, pred)
        return ["evaluate", "--ref", str(ref), "--pred", f"m={pred}", "-o", str(w / "out"), "--no-plots", *extra]

    return prepare


def msd_task(w: Path, damage: Callable[[Path], None] | None = None) -> Path:
    root = w / "Task06_Lung"
    rng = np.random.default_rng(1)
    for i in (1, 2):
        write_image(root / "imagesTr" / f"lung_00{i}.nii.gz", rng.integers(-1000, 400, (8, 16, 16)).astype(np.int16))
        write_image(root / "labelsTr" / f"lung_00{i}.nii.gz", label(i))
    (root / "dataset.json").write_text(json.dumps({"name": "Lung", "labels": {"0": "background", "1": "cancer"}}))
    if damage is not None:
        damage(root)
    return root


def weak(w: Path, labels: bool = False) -> Path:
    return raw_dataset(w / RAW, "Dataset902_Weak", with_labels=labels)


def strong(w: Path) -> Path:
    return raw_dataset(w / RAW, "Dataset900_Strong")


def teacher(w: Path, checkpoint: Callable[[Path], None] | None = None) -> str:
    """A box-guided teacher of dataset 902 (``TrainerA`` / ``cfg_box`` / fold 0); returns its ``-t`` spec."""
    from test_pseudo_labels_export import make_teacher

    folder = make_teacher(w / RES)
    if checkpoint is not None:
        checkpoint(folder / "fold_0" / "checkpoint_final.pth")
    return "902:TrainerA:cfg_box:0"


def payload(path: Path) -> None:
    torch.save({"network_weights": {}, "extra": Payload(path.parent / "payload_ran")}, path)


def truncated(path: Path) -> None:
    torch.save({"network_weights": {"w": torch.ones(1000)}}, path)
    cut_off(path)


def export(w: Path, *extra: str, spec: str | None = None, labels: bool = False) -> list[str]:
    weak(w, labels)
    return ["export-pseudo-labels", "-t", spec or teacher(w), "-w", "902", "-o", "501", "-device", "cpu",
            "--no-qc", *extra]


def plans(w: Path) -> Path:
    """A preprocessed dataset 900 whose plans have a small 3d_fullres configuration."""
    from test_student_plans import small_plans

    folder = w / PRE / "Dataset900_Strong"
    folder.mkdir(parents=True)
    (folder / "nnUNetPlans.json").write_text(json.dumps(small_plans()))
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                                     "tumor": 1}, "numTraining": 2, "file_ending": ".nii.gz"}))
    return folder


def with_plans(*argv: str) -> Callable[[Path], list[str]]:
    """``argv`` run against :func:`plans`' dataset 900."""
    return then(lambda w: list(argv), plans)


def constrain(w: Path, change: Callable[[Path, Path], None] = lambda p, b: None, out: str = "out",
              *extra: str) -> list[str]:
    predictions, boxes = two_cases(w / "pred"), two_cases(w / "boxes")
    change(predictions, boxes)
    return ["constrain-to-boxes", "-i", str(predictions), "-b", str(boxes), "-o", str(w / out), *extra]


def lpcd_source(w: Path) -> Path:
    """A Lung-PET-CT-Dx download whose only series is a 3-slice CT (no annotation folder)."""
    from _synthetic_sources import new_ids, write_ct_series

    root = w / "download"
    write_ct_series(root / "Lung-PET-CT-Dx" / "Lung_Dx-A0001" / "s" / "2.000000-x-1",
                    np.full((3, 16, 16), -800, np.int16), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0),
                    new_ids("Lung_Dx-A0001"), 2, "thorax")
    return root


def pipeline_folder(w: Path) -> Path:
    """A pipeline work folder claimed by the quick profile with seed 0."""
    import dataclasses

    from nnunet_kd.pipeline.profiles import QUICK
    from nnunet_kd.pipeline.work_folder import claim_work_folder

    folder = w / "work"
    folder.mkdir()
    claim_work_folder(folder, {"profile": dataclasses.asdict(QUICK), "seed": 0, "use_environment_folders": False})
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def nan_image(i: int) -> np.ndarray:
    array = label(i).astype(np.float32)
    array[0, 0, 0] = np.nan
    return array


# ---------------------------------------------------------------- the table

ROWS = [
    # evaluate
    Row("evaluate: reference folder missing", lambda w: ["evaluate", "--ref", str(w / "nowhere"), "--pred",
                                                         str(two_cases(w / "pred")), "-o", str(w / "out")],
        r"nowhere.*(does not exist|not a folder)"),
    Row("evaluate: prediction folder missing", lambda w: ["evaluate", "--ref", str(two_cases(w / "ref")), "--pred",
                                                          f"m={w / 'nowhere'}", "-o", str(w / "out")],
        r"nowhere.*(does not exist|not a folder)"),
    Row("evaluate: cut-off prediction", evaluate_with(lambda r, p: cut_off(p / "c1.nii.gz")), r"c1.*cut off"),
    Row("evaluate: cut-off reference", evaluate_with(lambda r, p: cut_off(r / "c0.nii.gz")), r"c0.*cut off"),
    Row("evaluate: prediction that is not an image",
        evaluate_with(lambda r, p: (p / "c1.nii.gz").write_bytes(b"not an image")), r"c1"),
    Row("evaluate: NaN voxels in a prediction",
        evaluate_with(lambda r, p: write_image(p / "c1.nii.gz", nan_image(1))), r"c1.*NaN"),
    Row("evaluate: prediction of another shape",
        evaluate_with(lambda r, p: write_image(p / "c1.nii.gz", label(1, (8, 16, 12)))), r"c1.*(shape|size|geometry)"),
    Row("evaluate: prediction missing a case", evaluate_with(lambda r, p: (p / "c1.nii.gz").unlink()), r"c1"),
    Row("evaluate: output inside the prediction folder",
        lambda w: evaluate_with(lambda r, p: None)(w)[:-2] + [str(w / "pred" / "report"), "--no-plots"],
        r"(holds its input|input)"),
    Row("evaluate: output is an existing file",
        lambda w: evaluate_with(lambda r, p: None)(w)[:-2] + [str(write(w / "report.txt", "notes")), "--no-plots"],
        r"is a file"),
    Row("evaluate: output is a foreign folder",
        lambda w: evaluate_with(lambda r, p: None)(w)[:-2] + [str(write(w / "mine" / "a.txt", "x").parent),
                                                               "--no-plots"],
        r"mine.*(not .*report|refus|not made)"),
    Row("evaluate: NaN voxels in a reference",
        evaluate_with(lambda r, p: write_image(r / "c0.nii.gz", nan_image(0))), r"c0.*NaN"),
    Row("evaluate: malformed --costs file",
        lambda w: evaluate_with(lambda r, p: None, "--costs", str(write(w / "costs.json", "{")))(w),
        r"costs.json.*(JSON|json)"),
    Row("evaluate: prediction given twice under one name",
        lambda w: evaluate_with(lambda r, p: None, "--pred", f"m={w / 'pred'}")(w), r"m"),

    # convert-msd-lung
    Row("msd: source folder missing", lambda w: ["convert-msd-lung", str(w / "nowhere"), "-d", "503"],
        r"nowhere.*(does not exist|missing)"),
    Row("msd: labelsTr missing", lambda w: ["convert-msd-lung", str(msd_task(w, lambda r: [
        p.unlink() for p in (r / "labelsTr").iterdir()] and (r / "labelsTr").rmdir())), "-d", "503"],
        r"labelsTr.*missing"),
    Row("msd: no case in imagesTr", lambda w: ["convert-msd-lung", str(msd_task(w, lambda r: [
        p.unlink() for p in (r / "imagesTr").iterdir()])), "-d", "503"], r"no \*\.nii\.gz case"),
    Row("msd: every case damaged", lambda w: ["convert-msd-lung", str(msd_task(w, lambda r: [
        cut_off(p) for p in (r / "labelsTr").iterdir()])), "-d", "503", "--quiet"], r"no case was kept"),
    Row("msd: output is the source", lambda w: ["convert-msd-lung", str(msd_task(w)), "-o", str(w / "Task06_Lung"),
                                                "--overwrite"], r"(holds its input|source)"),
    Row("msd: output inside the source", lambda w: ["convert-msd-lung", str(msd_task(w)), "-o",
                                                    str(w / "Task06_Lung" / "Dataset503_X")], r"(input|source)"),
    Row("msd: id taken by another dataset", then(lambda w: ["convert-msd-lung", str(msd_task(w)), "-d", "902"], weak),
        r"Dataset902_Weak already exists"),
    Row("msd: foreign output folder", lambda w: ["convert-msd-lung", str(msd_task(w)), "-o",
                                                 str(write(w / "mine" / "notes.txt", "x").parent)],
        r"not made by this converter"),
    Row("msd: both an output folder and an id", lambda w: ["convert-msd-lung", str(msd_task(w)), "-d", "503", "-o",
                                                           str(w / "out")], r"not allowed with"),
    Row("msd: test fraction above 1", lambda w: ["convert-msd-lung", str(msd_task(w)), "-d", "503",
                                                 "--test-fraction", "1.5"], r"1\.5"),

    # convert-lung-pet-ct-dx
    Row("lpcd: source folder missing", lambda w: ["convert-lung-pet-ct-dx", str(w / "nowhere"), "-d", "504"],
        r"nowhere.*does not exist"),
    Row("lpcd: no DICOM file", lambda w: ["convert-lung-pet-ct-dx", str(write(w / "dl" / "a.txt", "x").parent),
                                          "-d", "504"], r"no DICOM"),
    Row("lpcd: annotation folder missing", lambda w: ["convert-lung-pet-ct-dx", str(lpcd_source(w)),
                                                      "--annotations", str(w / "nowhere"), "-d", "504"],
        r"annotation folder .*nowhere.* does not exist"),
    Row("lpcd: output is the source", lambda w: ["convert-lung-pet-ct-dx", str(lpcd_source(w)), "-o",
                                                 str(w / "download"), "--overwrite"], r"(holds its input|source)"),
    Row("lpcd: no series kept", lambda w: ["convert-lung-pet-ct-dx", str(lpcd_source(w)), "-d", "504", "-q"],
        r"no case was kept"),

    # convert-nsclc
    Row("nsclc: source folder missing", lambda w: ["convert-nsclc", str(w / "nowhere"), "-d", "505"],
        r"nowhere.*does not exist"),
    Row("nsclc: no RTSTRUCT", lambda w: ["convert-nsclc", str(lpcd_source(w)), "-d", "505"], r"RTSTRUCT"),
    Row("nsclc: output is the source", lambda w: ["convert-nsclc", str(lpcd_source(w)), "-o", str(w / "download"),
                                                  "--overwrite"], r"(holds its input|source|RTSTRUCT)"),

    # boxes-to-labels
    Row("boxes-to-labels: output replaces the source", lambda w: ["boxes-to-labels", "-i", str(weak(w)), "-d", "902",
                                                                  "--overwrite"], r"holds its input"),
    Row("boxes-to-labels: id taken", then(lambda w: ["boxes-to-labels", "-i", str(weak(w)), "-d", "900"], strong),
        r"Dataset900_Strong already exists"),
    Row("boxes-to-labels: malformed dataset.json",
        lambda w: ["boxes-to-labels", "-i", str(write(weak(w) / "dataset.json", "{").parent), "-d", "906"],
        r"dataset.json is missing or not valid JSON"),
    Row("boxes-to-labels: cut-off box mask",
        then(lambda w: ["boxes-to-labels", "-i", str(weak(w)), "-d", "906"],
             lambda w: cut_off(w / RAW / "Dataset902_Weak" / "boxesTr" / "c1.nii.gz")), r"c1.*cut off"),
    Row("boxes-to-labels: cut-off label",
        then(lambda w: ["boxes-to-labels", "-i", str(weak(w, labels=True)), "-d", "906", "--from", "labels"],
             lambda w: cut_off(w / RAW / "Dataset902_Weak" / "labelsTr" / "c0.nii.gz")), r"c0.*cut off"),
    Row("boxes-to-labels: unknown source", lambda w: ["boxes-to-labels", "-i", "977", "-d", "906"], r"977"),
    Row("boxes-to-labels: labels asked, none there",
        lambda w: ["boxes-to-labels", "-i", str(weak(w)), "-d", "906", "--from", "labels"], r"labelsTr"),

    # constrain-to-boxes
    Row("constrain: cut-off box mask", lambda w: constrain(w, lambda p, b: cut_off(b / "c1.nii.gz")),
        r"c1.*cut off"),
    Row("constrain: cut-off prediction", lambda w: constrain(w, lambda p, b: cut_off(p / "c0.nii.gz")),
        r"c0.*cut off"),
    Row("constrain: box mask missing", lambda w: constrain(w, lambda p, b: (b / "c1.nii.gz").unlink()), r"c1"),
    Row("constrain: box mask of another shape",
        lambda w: constrain(w, lambda p, b: write_image(b / "c1.nii.gz", label(1, (8, 16, 12)))), r"c1"),
    Row("constrain: output is the prediction folder", lambda w: constrain(w, out="pred"), r"(input|same)"),
    Row("constrain: negative margin", lambda w: constrain(w, lambda p, b: None, "out", "--margin-mm", "-2"),
        r"margin"),
    Row("constrain: prediction folder missing",
        lambda w: ["constrain-to-boxes", "-i", str(w / "nowhere"), "-b", str(two_cases(w / "b")), "-o",
                   str(w / "out")], r"nowhere"),

    # export-pseudo-labels
    Row("export: output replaces the weak dataset",
        lambda w: export(w, "--overwrite")[:-5] + ["902", "-device", "cpu", "--no-qc", "--overwrite"],
        r"holds its input"),
    Row("export: cut-off box mask",
        then(export, lambda w: cut_off(w / RAW / "Dataset902_Weak" / "boxesTr" / "c1.nii.gz")), r"c1.*cut off"),
    Row("export: cut-off strong label",
        then(lambda w: export(w, "-s", "900"), lambda w: cut_off(strong(w) / "labelsTr" / "c1.nii.gz")),
        r"c1.*label.*cut off"),
    Row("export: teacher checkpoint with a pickle payload", lambda w: export(w, spec=teacher(w, payload)),
        r"could run code"),
    Row("export: cut-off teacher checkpoint", lambda w: export(w, spec=teacher(w, truncated)),
        r"checkpoint_final.pth.*(cut off|corrupt)"),
    Row("export: unknown weak dataset", lambda w: ["export-pseudo-labels", "-t", teacher(w), "-w", "977", "-o",
                                                   "501"], r"977"),
    Row("export: malformed teacher spec", lambda w: export(w, spec="902-TrainerA"), r"902-TrainerA"),
    Row("export: teacher folder missing", then(lambda w: export(w, spec="902:TrainerZ:cfg_box:0"), teacher),
        r"TrainerZ"),
    Row("export: output id taken by another dataset",
        then(export, lambda w: raw_dataset(w / RAW, "Dataset501_Other")), r"dataset id 501 already exists"),
    Row("export: malformed weak dataset.json",
        then(export, lambda w: write(w / RAW / "Dataset902_Weak" / "dataset.json", '{"labels": ')),
        r"dataset.json"),
    Row("export: fill thresholds out of order", lambda w: export(w, "--min-fill", "0.9", "--max-fill", "0.5"),
        r"fill"),
    Row("export: uncertainty thresholds out of order", lambda w: export(w, "--ignore-uncertain", "0.7", "0.3"),
        r"--ignore-uncertain thresholds"),
    Row("export: part id out of range", lambda w: export(w, "--num-parts", "2", "--part-id", "2"), r"part id 2"),

    # merge-pseudo-labels
    Row("merge: output is not an export", then(lambda w: ["merge-pseudo-labels", "-o", "902"], weak),
        r"(request|export)"),
    Row("merge: unknown output", lambda w: ["merge-pseudo-labels", "-o", "977"], r"977"),

    # predict-with-boxes
    Row("predict-with-boxes: model folder missing",
        then(lambda w: ["predict-with-boxes", "-i", str(images(w / "img")), "-b", str(two_cases(w / "b")), "-o",
                        str(w / "out"), "-d", "902", "-c", "cfg_box", "-tr", "TrainerZ", "-f", "0"], weak),
        r"TrainerZ"),
    Row("predict-with-boxes: output is the image folder",
        then(lambda w: ["predict-with-boxes", "-i", str(images(w / "img")), "-b", str(two_cases(w / "b")), "-o",
                        str(w / "img"), "-d", "902", "-c", "cfg_box", "-tr", "TrainerA", "-f", "0"], teacher),
        r"(input|same)"),

    # plans editors
    Row("add-student: unknown dataset", lambda w: ["add-student", "-d", "977"], r"977"),
    Row("add-student: width that leaves no feature", with_plans("add-student", "-d", "900", "--width", "0.001"),
        r"width"),
    Row("add-student: negative width", with_plans("add-student", "-d", "900", "--width", "-1"),
        r"width"),
    Row("add-student: spacing factor below 1", with_plans("add-student", "-d", "900", "--kind", "plain",
                                                          "--spacing-factor", "0.5"), r"--spacing-factor"),
    Row("add-student: unknown parent", with_plans("add-student", "-d", "900", "--parent", "3d_nothing"),
        r"3d_nothing"),
    Row("add-student: malformed plans", then(lambda w: ["add-student", "-d", "900"],
                                              lambda w: write(plans(w) / "nnUNetPlans.json", "{")),
        r"nnUNetPlans.json"),
    Row("add-box-config: unknown configuration", with_plans("add-box-config", "-d", "900", "-c", "3d_nothing"),
        r"3d_nothing"),
    Row("add-box-config: patch of two axes", with_plans("add-box-config", "-d", "900", "--patch-size", "32", "32"),
        r"patch"),
    Row("model-cost: unknown configuration", with_plans("model-cost", "-d", "900", "-c", "3d_nothing"),
        r"3d_nothing"),

    # export-onnx, predict-onnx
    Row("export-onnx: fold without a checkpoint",
        then(lambda w: ["export-onnx", "-d", "902", "-c", "cfg_box", "-tr", "TrainerA", "-f", "1", "-o",
                        str(w / "export")], teacher), r"fold 1 .*has no checkpoint_final.pth"),
    Row("export-onnx: cut-off checkpoint",
        then(lambda w: ["export-onnx", "-d", "902", "-c", "cfg_box", "-tr", "TrainerA", "-f", "0", "-o",
                        str(w / "export")], lambda w: teacher(w, truncated)), r"cut off or corrupt"),
    Row("export-onnx: checkpoint with a pickle payload",
        then(lambda w: ["export-onnx", "-d", "902", "-c", "cfg_box", "-tr", "TrainerA", "-f", "0", "-o",
                        str(w / "export")], lambda w: teacher(w, payload)), r"could run code"),
    Row("export-onnx: output inside the model folder",
        then(lambda w: ["export-onnx", "-d", "902", "-c", "cfg_box", "-tr", "TrainerA", "-f", "0", "-o",
                        str(w / RES / "Dataset902_Weak" / "TrainerA__nnUNetPlans__cfg_box" / "onnx")], teacher),
        r"holds its input"),
    Row("predict-onnx: model folder that is not an export",
        lambda w: ["predict-onnx", "-i", str(images(w / "img")), "-o", str(w / "out"), "-m",
                   str(write(w / "export" / "model.onnx", "x").parent)], r"not an ONNX export"),
    Row("predict-onnx: input folder missing",
        lambda w: ["predict-onnx", "-i", str(w / "nowhere"), "-o", str(w / "out"), "-m", str(w / "export")],
        r"nowhere"),

    # kd-spec
    Row("kd-spec: malformed teacher", lambda w: ["kd-spec", "-d", "900", "--teacher", "900-x", "-o",
                                                 str(w / "spec.json")], r"900-x"),
    Row("kd-spec: temperature zero", lambda w: ["kd-spec", "-d", "900", "--teacher", "900:TrainerA:cfg", "-T", "0",
                                                "-o", str(w / "spec.json")], r"[Tt]emperature"),
    Row("kd-spec: existing output", lambda w: ["kd-spec", "-d", "900", "--teacher", "900:TrainerA:cfg", "-o",
                                               str(write(w / "spec.json", "{}"))], r"(exists|overwrite)"),

    # phantoms
    Row("phantoms: no training case", lambda w: ["phantoms", "-d", "950", "--num-train", "0"], r"training case"),
    Row("phantoms: id taken", then(lambda w: ["phantoms", "-d", "902", "--num-train", "1"], weak), r"902"),
    Row("phantoms: tumour larger than the volume", lambda w: ["phantoms", "-d", "950", "--shape", "16", "16", "16",
                                                              "--min-diameter", "80", "--max-diameter", "90"],
        r"(diameter|tumour|fit)"),
    Row("phantoms: diameters out of order", lambda w: ["phantoms", "-d", "950", "--min-diameter", "40",
                                                       "--max-diameter", "20"], r"diameter"),

    # pipeline
    Row("pipeline: work folder made with other options",
        lambda w: ["pipeline", "-w", str(pipeline_folder(w)), "--quick", "--seed", "3"], r"seed"),
]


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    for variable in (RAW, PRE, RES):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    return tmp_path


def test_the_table_covers_every_command_with_at_least_60_rows():
    from nnunet_kd.cli import discover_commands

    assert len(ROWS) >= 60 and len({row.name for row in ROWS}) == len(ROWS)
    skipped = {"trainer-dir"}  # takes no input
    names = {row.name.split(":")[0] for row in ROWS}
    aliases = {"msd": "convert-msd-lung", "lpcd": "convert-lung-pet-ct-dx", "nsclc": "convert-nsclc",
               "constrain": "constrain-to-boxes", "export": "export-pseudo-labels", "merge": "merge-pseudo-labels"}
    assert {aliases.get(n, n) for n in names} | skipped == set(discover_commands())


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input_gets_one_clear_line_and_changes_nothing(folder, capsys, row):
    argv = row.prepare(folder)
    before = snapshot(folder)
    capsys.readouterr()
    try:
        code, errors = run_cli(capsys, *argv)
    except SystemExit as stop:  # argparse's own usage errors
        code, errors = stop.code, [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert code == row.code, errors
    assert len(errors) == 1, errors
    assert re.search(row.message, errors[0]), errors[0]
    assert snapshot(folder) == before
