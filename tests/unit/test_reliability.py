"""Bad input and faults: one clear message, no traceback, inputs byte-identical, nothing partial left behind.

Each case builds its inputs in a temporary folder, snapshots every file (path and SHA-256), runs the command as a user
would (``nnunet_kd ...`` in-process, or the library call the trainers make), and checks the exit code, the single
error line and the files on disk afterwards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunet_kd.cli import main
from nnunet_kd.errors import ConfigurationError, InputError


class Payload:
    """What a malicious checkpoint would carry: unpickling it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> SHA-256), hidden temporary names included."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit code and the ``error:`` lines on stderr of ``nnunet_kd argv``."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if ": error: " in line]


def write_image(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def cut_off(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def label(seed: int, shape=(8, 16, 16)) -> np.ndarray:
    array = np.zeros(shape, np.uint8)
    array[2 + seed % 3: 6, 4:10, 5:11] = 1
    return array


def raw_dataset(raw: Path, name: str, cases: int = 2, with_labels: bool = True) -> Path:
    folder = raw / name
    rng = np.random.default_rng(0)
    for i in range(cases):
        write_image(folder / "imagesTr" / f"c{i}_0000.nii.gz", rng.integers(-1000, 400, (8, 16, 16)).astype(np.int16))
        write_image(folder / "boxesTr" / f"c{i}.nii.gz", label(i))
        if with_labels:
            write_image(folder / "labelsTr" / f"c{i}.nii.gz", label(i))
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                                     "tumor": 1}, "numTraining": cases, "file_ending": ".nii.gz"}))
    return folder


@pytest.fixture
def raw(tmp_path, monkeypatch) -> Path:
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / variable).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / variable))
    return tmp_path / "nnUNet_raw"


# ---------------------------------------------------------------- evaluate


def evaluation_folders(tmp_path: Path) -> tuple[Path, Path]:
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for i in range(2):
        write_image(ref / f"c{i}.nii.gz", label(i))
        write_image(pred / f"c{i}.nii.gz", label(i))
    return ref, pred


def test_evaluate_refuses_a_cut_off_prediction_instead_of_scoring_it(tmp_path, capsys):
    ref, pred = evaluation_folders(tmp_path)
    cut_off(pred / "c1.nii.gz")
    before = snapshot(tmp_path)
    code, errors = run_cli(capsys, "evaluate", "--ref", str(ref), "--pred", f"m={pred}", "-o", str(tmp_path / "out"),
                           "--no-plots")
    assert code == 2 and len(errors) == 1
    assert "c1" in errors[0] and "cut off" in errors[0]
    assert snapshot(tmp_path) == before  # no report, no partial output


def test_evaluate_refuses_an_output_that_is_a_file_before_evaluating(tmp_path, capsys):
    ref, pred = evaluation_folders(tmp_path)
    report = tmp_path / "report.txt"
    report.write_text("my notes")
    before = snapshot(tmp_path)
    code, errors = run_cli(capsys, "evaluate", "--ref", str(ref), "--pred", str(pred), "-o", str(report))
    assert code == 2 and len(errors) == 1 and "is a file" in errors[0]
    assert snapshot(tmp_path) == before


def test_evaluate_refuses_a_cut_off_overlay_image_and_writes_no_report(tmp_path, capsys):
    ref, pred = evaluation_folders(tmp_path)
    images = tmp_path / "images"
    for i in range(2):
        write_image(images / f"c{i}_0000.nii.gz", np.zeros((8, 16, 16), np.int16))
    cut_off(images / "c0_0000.nii.gz")
    (pred / "c0.nii.gz").unlink()
    write_image(pred / "c0.nii.gz", np.zeros((8, 16, 16), np.uint8))  # c0 is the worst case: its overlay is drawn
    before = snapshot(tmp_path)
    code, errors = run_cli(capsys, "evaluate", "--ref", str(ref), "--pred", f"m={pred}", "-o", str(tmp_path / "out"),
                           "--images", str(images), "--worst", "1")
    assert code == 2 and len(errors) == 1 and "c0" in errors[0] and "cut off" in errors[0]
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_evaluate_replaces_an_earlier_report_whole_and_refuses_a_foreign_folder(tmp_path, capsys):
    ref, pred = evaluation_folders(tmp_path)
    out = tmp_path / "out"
    code, _ = run_cli(capsys, "evaluate", "--ref", str(ref), "--pred", f"a={pred}", "--pred", f"b={pred}",
                      "--compare", "a", "b", "-o", str(out), "--no-plots")
    assert code == 0 and (out / "paired_a_vs_b.csv").is_file()
    code, _ = run_cli(capsys, "evaluate", "--ref", str(ref), "--pred", f"a={pred}", "-o", str(out), "--no-plots")
    assert code == 0 and not (out / "paired_a_vs_b.csv").exists()  # nothing of the earlier report is left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("draft")
    code, errors = run_cli(capsys, "evaluate", "--ref", str(ref), "--pred", str(pred), "-o", str(mine), "--no-plots")
    assert code == 2 and "not an evaluation report" in errors[0] and (mine / "thesis.tex").read_text() == "draft"


# ---------------------------------------------------------------- converters


def msd_task(tmp_path: Path, bad: dict[str, str]) -> Path:
    """A Task06_Lung folder with two cases; ``bad`` maps a case to ``"cut image"``, ``"cut label"`` or ``"nan"``."""
    root = tmp_path / "Task06_Lung"
    for i, case in enumerate(["lung_001", "lung_002"]):
        image = np.random.default_rng(i).integers(-1000, 400, (8, 16, 16)).astype(np.float32)
        if bad.get(case) == "nan":
            image[1, 2, 3], image[4, 5, 6] = np.nan, np.inf
        write_image(root / "imagesTr" / f"{case}.nii.gz", image)
        write_image(root / "labelsTr" / f"{case}.nii.gz", label(i))
        if bad.get(case) == "cut image":
            cut_off(root / "imagesTr" / f"{case}.nii.gz")
        if bad.get(case) == "cut label":
            cut_off(root / "labelsTr" / f"{case}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({"name": "Lung", "labels": {"0": "background", "1": "cancer"}}))
    return root


@pytest.mark.parametrize(("problem", "reason"), [("cut label", "cut off"), ("cut image", "cut off"),
                                                  ("nan", "2 NaN or infinite voxel")])
def test_msd_conversion_excludes_a_damaged_case_with_its_reason(tmp_path, raw, capsys, problem, reason):
    source = msd_task(tmp_path, {"lung_002": problem})
    before = snapshot(source)
    code, errors = run_cli(capsys, "convert-msd-lung", str(source), "-d", "503", "--quiet")
    assert code == 0 and not errors
    manifest = json.loads((raw / "Dataset503_MSDLung" / "manifest.json").read_text())
    rows = {row["case"]: row for row in manifest["rows"]}
    assert rows["lung_001"]["status"] == "kept"
    assert rows["lung_002"]["status"] == "excluded" and reason in rows["lung_002"]["reason"]
    assert not (raw / "Dataset503_MSDLung" / "labelsTr" / "lung_002.nii.gz").exists()
    assert snapshot(source) == before


def test_a_conversion_that_keeps_no_case_exits_non_zero(tmp_path, raw, capsys):
    source = msd_task(tmp_path, {"lung_001": "cut label", "lung_002": "nan"})
    code, errors = run_cli(capsys, "convert-msd-lung", str(source), "-d", "503", "--quiet")
    assert code == 2 and len(errors) == 1 and "no case was kept" in errors[0]


def test_a_converter_refuses_an_id_that_another_dataset_has_and_a_foreign_folder(tmp_path, raw, capsys):
    source = msd_task(tmp_path, {})
    other = raw_dataset(raw, "Dataset503_Other")
    before = snapshot(raw)
    code, errors = run_cli(capsys, "convert-msd-lung", str(source), "-d", "503", "--quiet")
    assert code == 2 and len(errors) == 1 and "Dataset503_Other already exists" in errors[0]
    assert snapshot(raw) == before
    foreign = tmp_path / "mine"
    (foreign / "notes.txt").parent.mkdir()
    (foreign / "notes.txt").write_text("not a dataset")
    code, errors = run_cli(capsys, "convert-msd-lung", str(source), "-o", str(foreign), "--quiet")
    assert code == 2 and "not made by this converter" in errors[0] and (foreign / "notes.txt").is_file()
    code, errors = run_cli(capsys, "convert-msd-lung", str(source), "-d", "503", "--overwrite", "--quiet")
    assert code == 0 and not other.exists() and [p.name for p in raw.glob("Dataset503_*")] == ["Dataset503_MSDLung"]
    code, errors = run_cli(capsys, "convert-msd-lung", str(source), "-d", "503", "--quiet")  # its own folder: resumes
    assert code == 0 and not errors


def test_phantoms_remove_the_hidden_folder_an_interrupted_run_left(raw, capsys):
    stale = raw / ".Dataset950_Tiny.tmp-0badf00d"
    (stale / "imagesTr").mkdir(parents=True)
    (stale / "imagesTr" / "half_written.nii.gz").write_bytes(b"cut")
    code, errors = run_cli(capsys, "phantoms", "-d", "950", "--name", "Tiny", "--num-train", "1", "--shape",
                           "16", "32", "32", "--max-diameter", "20", "--min-diameter", "10")
    assert code == 0 and not errors
    assert not stale.exists() and [p.name for p in raw.iterdir()] == ["Dataset950_Tiny"]


# ---------------------------------------------------------------- boxes-to-labels


@pytest.mark.parametrize("extra", [["--name", "Weak"], ["--name", "Weak", "--overwrite"], ["--overwrite"]])
def test_boxes_to_labels_never_replaces_its_own_input(raw, capsys, extra):
    source = raw_dataset(raw, "Dataset902_Weak", with_labels=False)
    (source / "referenceTr").mkdir()
    write_image(source / "referenceTr" / "c0.nii.gz", label(0))
    before = snapshot(raw)
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "902", *extra)
    assert code == 2 and len(errors) == 1 and "holds its input" in errors[0]
    assert snapshot(raw) == before


def test_boxes_to_labels_refuses_an_id_another_dataset_has_unless_asked(raw, capsys):
    raw_dataset(raw, "Dataset902_Weak", with_labels=False)
    other = raw_dataset(raw, "Dataset905_Other")
    before = snapshot(raw)
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "905")
    assert code == 2 and len(errors) == 1 and "Dataset905_Other already exists" in errors[0]
    assert snapshot(raw) == before
    code, _ = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "905", "--overwrite")
    assert code == 0 and not other.exists()
    assert [p.name for p in raw.glob("Dataset905_*")] == ["Dataset905_WeakBoxes"]  # one dataset per id


def test_boxes_to_labels_names_a_malformed_dataset_json(raw, capsys):
    source = raw_dataset(raw, "Dataset902_Weak")
    (source / "dataset.json").write_text('{"channel_names": {"0": "CT"},')
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", str(source), "-d", "906")
    assert code == 2 and len(errors) == 1 and "dataset.json is missing or not valid JSON" in errors[0]
    assert not list(raw.glob("Dataset906_*"))


def test_boxes_to_labels_refuses_a_cut_off_label(raw, capsys):
    source = raw_dataset(raw, "Dataset902_Weak")
    cut_off(source / "labelsTr" / "c1.nii.gz")
    code, errors = run_cli(capsys, "boxes-to-labels", "-i", "902", "-d", "906")
    assert code == 2 and len(errors) == 1 and "c1" in errors[0] and "cut off" in errors[0]
    assert not list(raw.glob("Dataset906_*")) and not list(raw.glob(".Dataset906*"))


# ---------------------------------------------------------------- box inputs and box constraint


def test_constrain_to_boxes_refuses_a_cut_off_box_mask_before_writing_any_case(tmp_path, capsys):
    predictions, boxes = tmp_path / "pred", tmp_path / "boxes"
    for i in range(3):
        write_image(predictions / f"c{i}.nii.gz", label(i))
        write_image(boxes / f"c{i}.nii.gz", label(i))
    cut_off(boxes / "c2.nii.gz")
    before = snapshot(tmp_path)
    code, errors = run_cli(capsys, "constrain-to-boxes", "-i", str(predictions), "-b", str(boxes),
                           "-o", str(tmp_path / "out"))
    assert code == 2 and len(errors) == 1 and "box mask" in errors[0] and "cut off" in errors[0]
    assert snapshot(tmp_path) == before


def test_a_cut_off_box_mask_is_a_problem_of_its_case_not_an_empty_box():
    from nnunet_kd.boxes.inputs import check_box_case

    folder = Path(__import__("tempfile").mkdtemp())
    image = write_image(folder / "c0_0000.nii.gz", np.zeros((8, 16, 16), np.int16))
    box = cut_off(write_image(folder / "c0.nii.gz", label(0)))
    problem = check_box_case(image, box)
    assert problem is not None and "cut off" in problem


# ---------------------------------------------------------------- pseudo-label export


def test_export_into_its_own_weak_dataset_is_refused_even_with_overwrite(raw):
    from test_pseudo_labels_export import BoxTeacher, make_teacher, make_weak

    make_teacher(raw.parent / "nnUNet_results")
    weak = make_weak(raw)
    before = snapshot(raw)
    from nnunet_kd.pseudo_labels import TeacherRequest, export_pseudo_labels

    with pytest.raises(ConfigurationError, match="holds its input"):
        export_pseudo_labels([TeacherRequest("902", "TrainerA", "cfg_box", folds=("0",))], "902", output_id=902,
                             overwrite=True, model_factory=BoxTeacher, progress=False)
    assert snapshot(raw) == before and weak.is_dir()


def test_export_refuses_a_cut_off_box_mask_before_writing_anything(raw):
    from test_pseudo_labels_export import BoxTeacher, make_teacher, make_weak

    make_teacher(raw.parent / "nnUNet_results")
    weak = make_weak(raw)
    cut_off(weak / "boxesTr" / "c1.nii.gz")
    before = snapshot(raw)
    from nnunet_kd.pseudo_labels import TeacherRequest, export_pseudo_labels

    with pytest.raises(InputError, match="c1.*cut off"):
        export_pseudo_labels([TeacherRequest("902", "TrainerA", "cfg_box", folds=("0",))], "902", output_id=501,
                             model_factory=BoxTeacher, progress=False)
    assert snapshot(raw) == before


def test_export_refuses_a_cut_off_strong_label_before_writing_anything(raw):
    from test_pseudo_labels_export import BoxTeacher, make_strong, make_teacher, make_weak

    make_teacher(raw.parent / "nnUNet_results")
    make_weak(raw)
    strong = make_strong(raw)
    cut_off(strong / "labelsTr" / "c1.nii.gz")
    before = snapshot(raw)
    from nnunet_kd.pseudo_labels import TeacherRequest, export_pseudo_labels

    with pytest.raises(InputError, match="strong case c1: label.*cut off"):
        export_pseudo_labels([TeacherRequest("902", "TrainerA", "cfg_box", folds=("0",))], "902", strong="900",
                             output_id=501, model_factory=BoxTeacher, progress=False)
    assert snapshot(raw) == before


def test_export_refuses_a_teacher_checkpoint_with_a_pickle_payload(tmp_path):
    from nnunet_kd.pseudo_labels.predictor import NnunetTeacher
    from nnunet_kd.pseudo_labels.teacher_requests import Teacher, TeacherRequest

    folder = tmp_path / "Dataset900_T" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    marker = tmp_path / "payload_ran"
    torch.save({"network_weights": {}, "extra": Payload(marker)}, folder / "fold_0" / "checkpoint_final.pth")
    teacher = Teacher(TeacherRequest("900", "nnUNetTrainer", "3d_fullres"), folder, ("0",), {"background": 0,
                      "tumor": 1}, 1, ".nii.gz", False)
    with pytest.raises(InputError, match="could run code"):
        NnunetTeacher(teacher, device="cpu")
    assert not marker.exists()


# ---------------------------------------------------------------- distillation checkpoints


@pytest.mark.parametrize("name", sorted(__import__("nnunet_kd.trainers", fromlist=["__all__"]).__all__))
def test_every_shipped_trainer_refuses_to_resume_from_a_checkpoint_with_a_pickle_payload(tmp_path, capsys, name):
    import nnunet_kd.trainers

    trainer = object.__new__(getattr(nnunet_kd.trainers, name))  # nnU-Net's --c and --val call load_checkpoint
    marker = tmp_path / "payload_ran"
    unsafe = tmp_path / "checkpoint_latest.pth"
    torch.save({"network_weights": {}, "extra": Payload(marker)}, unsafe)
    with pytest.raises(SystemExit) as exit_info:
        trainer.load_checkpoint(str(unsafe))
    assert exit_info.value.code == 2 and not marker.exists()
    assert "could run code" in capsys.readouterr().err


def test_a_distillation_student_refuses_to_resume_from_a_cut_off_checkpoint(tmp_path, capsys):
    # (its refusal of a pickle payload is the parametrized test above)
    from nnunet_kd.trainers.knowledge_distillation import nnUNetTrainerMKD

    trainer = object.__new__(nnUNetTrainerMKD)
    trainer.device = torch.device("cpu")
    cut = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"w": torch.ones(100)}}, cut)
    cut_off(cut)
    with pytest.raises(SystemExit) as exit_info:
        trainer.load_checkpoint(str(cut))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nnunet_kd: error:")]
    assert exit_info.value.code == 2 and len(errors) == 1 and "cut off or corrupt" in errors[0]


@pytest.mark.parametrize("name", sorted(__import__("nnunet_kd.trainers", fromlist=["__all__"]).__all__))
def test_every_shipped_trainer_writes_its_checkpoint_under_a_temporary_name(tmp_path, monkeypatch, name):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    import nnunet_kd.trainers

    def interrupted_save(self, filename):  # nnU-Net's save, stopped halfway through writing
        Path(filename).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    trainer = object.__new__(getattr(nnunet_kd.trainers, name))
    trainer.local_rank, trainer.disable_checkpointing, trainer.kd_objective = 0, False, None
    latest = tmp_path / "checkpoint_latest.pth"
    torch.save({"network_weights": {"w": torch.ones(3)}}, latest)
    before = snapshot(tmp_path)
    monkeypatch.setattr(nnUNetTrainer, "save_checkpoint", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(str(latest))
    assert snapshot(tmp_path) == before  # the previous checkpoint is whole, no temporary file is left


def test_the_progress_plot_is_drawn_under_a_temporary_name(tmp_path, monkeypatch):
    from nnunetv2.training.logging.nnunet_logger import LocalLogger, MetaLogger

    from nnunet_kd.trainers.safe_checkpoints import ProgressPlotWrittenWhole

    logger = ProgressPlotWrittenWhole(MetaLogger(str(tmp_path), False))
    for epoch in range(2):
        for key, value in (("mean_fg_dice", 0.5), ("ema_fg_dice", 0.5), ("dice_per_class_or_region", [0.5]),
                           ("train_losses", 1.0), ("val_losses", 1.0), ("lrs", 0.01), ("epoch_start_timestamps", 0),
                           ("epoch_end_timestamps", 1)):
            logger.log(key, value, epoch)
    logger.plot_progress_png(str(tmp_path))
    assert (tmp_path / "progress.png").read_bytes().startswith(b"\x89PNG")
    before = snapshot(tmp_path)

    def interrupted(self, output_folder):
        (Path(output_folder) / "progress.png").write_bytes(b"\x89PN")
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalLogger, "plot_progress_png", interrupted)
    with pytest.raises(KeyboardInterrupt):
        logger.plot_progress_png(str(tmp_path))
    assert snapshot(tmp_path) == before
