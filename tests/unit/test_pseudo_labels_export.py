"""Pseudo-label export end to end with stand-in teachers (no network): layout, resume, parts + merge, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.pseudo_labels import ExportOptions, TeacherRequest, Thresholds, export_pseudo_labels, merge_export
from nnunet_kd.pseudo_labels.export import export_case

SHAPE = (5, 12, 12)  # z, y, x
SPACING_XYZ = (1.0, 1.0, 2.0)
LABELS = {"background": 0, "tumor": 1}


def _write(array: np.ndarray, path: Path, dtype=np.int16) -> None:
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin((-5.0, 3.0, 10.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _dataset_json(folder: Path, labels=LABELS, channels=None) -> None:
    meta = {"channel_names": channels or {"0": "CT"}, "labels": labels, "numTraining": 0, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(meta))


def _case_box(index: int) -> np.ndarray:
    box = np.zeros(SHAPE, dtype=np.uint8)
    box[1:4, 2 + index: 6 + index, 3:8] = 1
    return box


def make_weak(raw: Path, cases=3, name="Dataset902_Weak") -> Path:
    folder = raw / name
    rng = np.random.default_rng(0)
    for i in range(cases):
        _write(rng.integers(-1000, 400, SHAPE), folder / "imagesTr" / f"c{i}_0000.nii.gz")
        _write(_case_box(i), folder / "boxesTr" / f"c{i}.nii.gz", np.uint8)
    _dataset_json(folder)
    return folder


def make_strong(raw: Path, name="Dataset900_Strong") -> Path:
    folder = raw / name
    rng = np.random.default_rng(1)
    for i in range(2):
        _write(rng.integers(-1000, 400, SHAPE), folder / "imagesTr" / f"c{i}_0000.nii.gz")
        label = np.zeros(SHAPE, np.uint8)
        label[2, 3:5, 3:5] = 1
        _write(label, folder / "labelsTr" / f"c{i}.nii.gz", np.uint8)
    _dataset_json(folder)
    return folder


def make_teacher(results: Path, trainer="TrainerA", configuration="cfg_box", box_guided=True, labels=LABELS,
                 folds=(0,)) -> Path:
    folder = results / "Dataset902_Weak" / f"{trainer}__nnUNetPlans__{configuration}"
    folder.mkdir(parents=True)
    _dataset_json(folder, labels)
    config = {"inherits_from": "3d_fullres", **({"previous_stage": "boxes"} if box_guided else {})}
    (folder / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}, configuration: config}}))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        (folder / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
    return folder


class BoxTeacher:
    """Stand-in for nnU-Net's predictor: p(tumour) = 0.9 in the box except its first row, 0.05 elsewhere, and
    (case c1) a stray 0.8 voxel far from the box."""

    def __init__(self, teacher):
        self.name = teacher.name
        self.box_guided = teacher.box_guided
        self.calls: list[str] = []

    def predict(self, images, boxes):
        self.calls.append(Path(images[0]).name)
        box = sitk.GetArrayFromImage(sitk.ReadImage(str(boxes))) > 0
        p = np.where(box, 0.9, 0.05).astype(np.float32)
        first_rows = box & ~np.roll(box, 1, axis=1)
        p[first_rows] = 0.3
        if "c1_" in Path(images[0]).name:
            p[4, 11, 0] = 0.8
        return np.stack([1 - p, p])


@pytest.fixture
def env(tmp_path, monkeypatch):
    raw, results = tmp_path / "raw", tmp_path / "results"
    for key, folder in (("nnUNet_raw", raw), ("nnUNet_preprocessed", tmp_path / "pre"), ("nnUNet_results", results)):
        folder.mkdir()
        monkeypatch.setenv(key, str(folder))
    make_weak(raw)
    make_strong(raw)
    make_teacher(results)
    return tmp_path


SPEC = TeacherRequest("902", "TrainerA", "cfg_box", folds=("0",))


def run_export(**kwargs) -> Path:
    kwargs.setdefault("model_factory", BoxTeacher)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("options", ExportOptions(soft_labels=True, qc=False))
    return export_pseudo_labels([SPEC], "902", strong="900", **kwargs)


def snapshot(folder: Path) -> dict[str, object]:
    """Every file's content (images as arrays) except the QC PNGs' bytes (only their names); the dataset's own
    name is masked in text files so that two exports into different ids compare equal."""
    result: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            continue
        key = str(path.relative_to(folder))
        if path.name.endswith(".nii.gz"):
            result[key] = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).tolist()
        elif path.suffix == ".npz":
            result[key] = np.load(path)["probabilities"].tolist()
        elif path.suffix == ".png":
            result[key] = "png"
        else:
            result[key] = path.read_text().replace(folder.name, "<dataset>")
    return result


def test_export_writes_an_nnunet_raw_dataset_with_provenance_and_qc(env):
    folder = run_export(options=ExportOptions(soft_labels=True, qc_sample=1))
    assert folder == env / "raw" / "Dataset501_PseudoLabels"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 5 and meta["labels"] == LABELS and meta["channel_names"] == {"0": "CT"}
    names = sorted(p.name for p in (folder / "labelsTr").iterdir())
    assert names == [f"{p}_c{i}.nii.gz" for p, n in (("strong", 2), ("weak", 3)) for i in range(n)]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [n.replace(".nii", "_0000.nii") for n in names]
    label = sitk.ReadImage(str(folder / "labelsTr" / "weak_c1.nii.gz"))
    assert label.GetSpacing() == SPACING_XYZ and label.GetOrigin() == (-5.0, 3.0, 10.0)
    # box c1: z 1..3, rows 3..6, cols 3..7 = 60 voxels; first row (15 voxels) at p = 0.3 -> fill 45 / 60 = 0.75
    assert sitk.GetArrayFromImage(label).sum() == 45  # the stray voxel was cleaned away
    rows = json.loads((folder / "provenance" / "provenance.json").read_text())
    case = next(c for c in rows["cases"] if c["case"] == "weak_c1")
    assert case["box_fill"] == [0.75] and case["num_boxes"] == 1 and case["source_dataset"] == "Dataset902_Weak"
    assert case["outside_voxels"] == 1 and case["flags"] == ["outside_boxes"] and case["removed_outside_voxels"] == 1
    assert case["teachers"] == ["Dataset902_Weak:TrainerA__nnUNetPlans__cfg_box:0"]
    assert case["mean_foreground_probability"] == pytest.approx(0.9, abs=1e-6)
    strong = next(c for c in rows["cases"] if c["case"] == "strong_c0")
    assert strong["kind"] == "strong" and strong["teachers"] == []
    assert rows["summary"]["flagged_cases"] == 1 and rows["summary"]["num_pseudo"] == 3
    csv_lines = (folder / "provenance" / "provenance.csv").read_text().splitlines()
    assert len(csv_lines) == 6
    soft = np.load(folder / "softLabelsTr" / "weak_c1.npz")["probabilities"]
    assert soft.shape == (2, *SHAPE) and soft.dtype == np.float16 and soft[1, 4, 11, 0] == pytest.approx(0.8, abs=1e-3)
    page = (folder / "qc" / "index.html").read_text()
    assert "weak_c1.png" in page and (folder / "qc" / "weak_c1.png").stat().st_size > 1000  # flagged: always shown
    assert len(list((folder / "qc").glob("*.png"))) == 2  # flagged + a sample of 1
    # hard links: the dataset's image is the weak dataset's file
    source = env / "raw" / "Dataset902_Weak" / "imagesTr" / "c0_0000.nii.gz"
    assert os.stat(folder / "imagesTr" / "weak_c0_0000.nii.gz").st_ino == os.stat(source).st_ino


def test_link_modes(env):
    folder = run_export(options=ExportOptions(link_mode="symlink", qc=False))
    assert (folder / "imagesTr" / "weak_c0_0000.nii.gz").is_symlink()
    folder = run_export(options=ExportOptions(link_mode="copy", qc=False), overwrite=True)
    image = folder / "imagesTr" / "weak_c0_0000.nii.gz"
    source = env / "raw" / "Dataset902_Weak" / "imagesTr" / "c0_0000.nii.gz"
    assert not image.is_symlink() and os.stat(image).st_ino != os.stat(source).st_ino


def test_interrupted_export_resumes_to_the_identical_result_without_temporaries(env, monkeypatch):
    reference = snapshot(run_export(output_id=601, options=ExportOptions(soft_labels=True, qc_sample=1)))
    import nnunet_kd.pseudo_labels.export as export_module

    calls = {"n": 0}

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed in the middle of the export
        return export_case(*args, **kwargs)

    monkeypatch.setattr(export_module, "export_case", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_export(options=ExportOptions(soft_labels=True, qc_sample=1))
    monkeypatch.setattr(export_module, "export_case", export_case)
    folder = env / "raw" / "Dataset501_PseudoLabels"
    assert not (folder / "dataset.json").exists()  # unfinished datasets have no dataset.json
    assert len(list((folder / "provenance" / "cases").iterdir())) == 2
    # leftovers of a writer killed mid-file, as atomic_path would leave them
    (folder / "labelsTr" / ".weak_c0.tmp-0badf00d.nii.gz").write_bytes(b"half")
    (folder / "imagesTr" / ".weak_c0_0000.tmp-0badf00d.nii.gz").write_bytes(b"half")
    teachers = []

    def factory(teacher):
        teachers.append(BoxTeacher(teacher))
        return teachers[-1]

    run_export(model_factory=factory, options=ExportOptions(soft_labels=True, qc_sample=1))
    assert sorted(teachers[0].calls) == ["c0_0000.nii.gz", "c1_0000.nii.gz", "c2_0000.nii.gz"]  # strong cases done
    assert not [p for p in folder.rglob("*") if ".tmp-" in p.name]
    assert snapshot(folder) == reference


def test_rerun_of_a_finished_export_loads_no_teacher(env):
    run_export()
    loaded = []
    run_export(model_factory=lambda t: loaded.append(t) or BoxTeacher(t))
    assert loaded == []


def test_two_parts_and_merge_equal_one_part(env):
    one = snapshot(run_export(output_id=601))
    for part in (0, 1):
        folder = run_export(num_parts=2, part_id=part)
        assert not (folder / "dataset.json").exists()
    with pytest.raises(InputError, match="not exported yet"):
        shutil.move(str(folder / "provenance" / "cases" / "weak_c2.json"), str(env / "held.json"))
        merge_export(folder, progress=False)
    shutil.move(str(env / "held.json"), str(folder / "provenance" / "cases" / "weak_c2.json"))
    from nnunet_kd.cli import main

    assert main(["merge-pseudo-labels", "-o", "501"]) == 0  # the id is looked up under nnUNet_raw
    assert snapshot(folder) == one
    assert (folder / "dataset.json").is_file() and not (folder / "qc" / "index.html").exists()  # qc=False


def test_teachers_with_different_label_sets_are_refused_before_anything_is_written(env):
    make_teacher(env / "results", trainer="TrainerB", labels={"background": 0, "tumor": 1, "node": 2})
    specs = [SPEC, TeacherRequest("902", "TrainerB", "cfg_box")]
    with pytest.raises(ConfigurationError, match="different label sets"):
        export_pseudo_labels(specs, "902", model_factory=BoxTeacher, progress=False)
    assert not list((env / "raw").glob("Dataset501_*"))


def test_box_teacher_without_boxes_is_refused(env):
    shutil.rmtree(env / "raw" / "Dataset902_Weak" / "boxesTr")
    with pytest.raises(InputError, match="box-guided .* expects box masks"):
        export_pseudo_labels([SPEC], "902", model_factory=BoxTeacher, progress=False)
    assert not list((env / "raw").glob("Dataset501_*"))


def test_weak_case_without_a_box_file_is_refused(env):
    (env / "raw" / "Dataset902_Weak" / "boxesTr" / "c1.nii.gz").unlink()
    with pytest.raises(InputError, match="c1: box mask .* is missing"):
        run_export()
    assert not list((env / "raw").glob("Dataset501_*"))


def test_existing_output_id_is_refused_unless_overwrite(env):
    other = env / "raw" / "Dataset501_SomethingElse"
    (other / "imagesTr").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="dataset id 501 already exists"):
        run_export()
    assert other.is_dir() and not (env / "raw" / "Dataset501_PseudoLabels").exists()
    folder = run_export(overwrite=True)
    assert not other.exists() and (folder / "dataset.json").is_file()
    with pytest.raises(ConfigurationError, match="already exists"):  # same id, different request (options)
        run_export(options=ExportOptions(cleanup=False))


def test_plain_teacher_gets_no_boxes_and_the_ensemble_weights_teachers(env):
    make_teacher(env / "results", trainer="TrainerPlain", configuration="cfg", box_guided=False)
    seen = {}

    class Plain:
        def __init__(self, teacher):
            self.name, self.box_guided = teacher.name, teacher.box_guided

        def predict(self, images, boxes):
            seen[Path(images[0]).name] = boxes
            return np.stack([np.full(SHAPE, 0.0, np.float32), np.full(SHAPE, 1.0, np.float32)])

    def factory(teacher):
        return Plain(teacher) if teacher.spec.trainer == "TrainerPlain" else BoxTeacher(teacher)

    specs = [TeacherRequest("902", "TrainerA", "cfg_box", weight=3.0), TeacherRequest("902", "TrainerPlain", "cfg")]
    folder = export_pseudo_labels(specs, "902", model_factory=factory, progress=False,
                                  options=ExportOptions(soft_labels=True, cleanup=False, qc=False))
    assert set(seen.values()) == {None}
    soft = np.load(folder / "softLabelsTr" / "weak_c0.npz")["probabilities"].astype(np.float32)
    # weights 3:1 -> outside the box: 0.75 * 0.05 + 0.25 * 1.0; inside: 0.75 * 0.9 + 0.25; first box row:
    # 0.75 * 0.3 + 0.25 = 0.475 (background)
    assert soft[1, 0, 0, 0] == pytest.approx(0.2875, abs=1e-3) and soft[1, 2, 4, 4] == pytest.approx(0.925, abs=1e-3)
    assert soft[1, 2, 2, 4] == pytest.approx(0.475, abs=1e-3)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "weak_c0.nii.gz"))).sum() == 45


def test_parts_started_together_share_the_fresh_folder(env):
    (env / "raw" / "Dataset501_PseudoLabels" / "imagesTr").mkdir(parents=True)  # another part is setting it up
    folder = run_export(num_parts=2, part_id=1)
    assert len(list((folder / "provenance" / "cases").iterdir())) == 2  # cases 1 and 3 of 5


def test_pseudo_labelled_cases_are_read_from_the_provenance(env):
    from nnunet_kd.pseudo_labels.provenance import pseudo_labelled_cases

    folder = run_export()
    labelled = sorted(p.name[: -len(".nii.gz")] for p in (folder / "labelsTr").glob("*.nii.gz"))
    pseudo = pseudo_labelled_cases(folder)
    assert pseudo and pseudo == {case for case in labelled if case.startswith("weak_")}
    assert pseudo_labelled_cases(env / "raw" / "Dataset900_Strong") == frozenset()  # not made by the export


def test_rerun_redoes_exactly_the_cases_whose_inputs_changed(env, capsys):
    import os

    folder = run_export(options=ExportOptions(qc=False))
    first = snapshot(folder)
    loaded = []

    def recording(teacher):
        model = BoxTeacher(teacher)
        loaded.append(model)
        return model

    # a changed box mask: only that weak case is redone
    box = env / "raw" / "Dataset902_Weak" / "boxesTr" / "c1.nii.gz"
    os.utime(box, ns=(box.stat().st_atime_ns, box.stat().st_mtime_ns + 10**9))
    run_export(options=ExportOptions(qc=False), model_factory=recording, progress=True)
    assert [call for model in loaded for call in model.calls] == ["c1_0000.nii.gz"]
    assert "1 case(s) redone because their inputs or teachers changed" in capsys.readouterr().out

    # a retrained teacher: every pseudo-labelled case is redone, no strong case
    loaded.clear()
    teacher = env / "results" / "Dataset902_Weak" / "TrainerA__nnUNetPlans__cfg_box"
    (teacher / "fold_0" / "checkpoint_final.pth").write_bytes(b"retrained")
    run_export(options=ExportOptions(qc=False), model_factory=recording, progress=True)
    assert sorted(call for model in loaded for call in model.calls) == ["c0_0000.nii.gz", "c1_0000.nii.gz",
                                                                         "c2_0000.nii.gz"]
    assert "3 case(s) redone" in capsys.readouterr().out
    assert set(snapshot(folder)) == set(first)  # the same files, rewritten in place


def test_an_export_that_stopped_before_its_first_case_does_not_block_a_rerun_with_another_teacher(env):
    def damaged(teacher):
        raise InputError(f"{teacher.name}: checkpoint_final.pth is damaged")

    with pytest.raises(InputError, match="damaged"):
        run_export(model_factory=damaged)
    assert not (env / "raw" / "Dataset501_PseudoLabels").exists()  # nothing of it is left
    skeleton = env / "raw" / "Dataset501_PseudoLabels"  # what a killed export (no cleanup) leaves
    skeleton.joinpath("imagesTr").mkdir(parents=True)
    skeleton.joinpath("provenance").mkdir()
    skeleton.joinpath("provenance", "request.json").write_text('{"teachers": ["TrainerA"]}')
    make_teacher(env / "results", trainer="TrainerB")
    folder = export_pseudo_labels([TeacherRequest("902", "TrainerB", "cfg_box", folds=("0",))], "902", strong="900",
                                  model_factory=BoxTeacher, progress=False, options=ExportOptions(qc=False))
    assert "TrainerB" in (folder / "provenance" / "request.json").read_text()
    assert (folder / "dataset.json").is_file()


def test_confidence_aware_export_writes_the_ignore_label_records_it_and_declares_it(env):
    # BoxTeacher: p(tumour) 0.9 in the box, 0.3 on its first row, 0.05 elsewhere: the first row is unsure
    folder = run_export(options=ExportOptions(qc_sample=3, ignore_uncertain=(0.2, 0.5)))
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "tumor": 1, "ignore": 2}
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "weak_c1.nii.gz")))
    first_row = (_case_box(1) > 0) & ~np.roll(_case_box(1) > 0, 1, axis=1)
    assert np.array_equal(label == 2, first_row) and (label == 1).sum() == 45  # 15 ignored, 45 tumour
    strong = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "strong_c0.nii.gz")))
    assert set(np.unique(strong)) == {0, 1}  # strong cases keep their voxel labels
    rows = json.loads((folder / "provenance" / "provenance.json").read_text())["cases"]
    case = next(c for c in rows if c["case"] == "weak_c1")
    assert case["ignored_voxels"] == 15 and case["box_fill"] == [0.75]
    assert next(c for c in rows if c["case"] == "strong_c0")["ignored_voxels"] is None
    assert (folder / "qc" / "weak_c1.png").stat().st_size > 1000


def test_voxels_where_the_teachers_disagree_get_the_ignore_label_inside_the_boxes(env):
    make_teacher(env / "results", trainer="TrainerPlain", configuration="cfg", box_guided=False)

    class EverywhereTumour:  # disagrees with BoxTeacher on its unsure first box row and everywhere outside the box
        def __init__(self, teacher):
            self.name, self.box_guided = teacher.name, teacher.box_guided

        def predict(self, images, boxes):
            return np.stack([np.full(SHAPE, 0.0, np.float32), np.full(SHAPE, 1.0, np.float32)])

    def factory(teacher):
        return EverywhereTumour(teacher) if teacher.spec.trainer == "TrainerPlain" else BoxTeacher(teacher)

    specs = [TeacherRequest("902", "TrainerA", "cfg_box", weight=3.0), TeacherRequest("902", "TrainerPlain", "cfg")]
    options = ExportOptions(qc=False, thresholds=Thresholds(margin_mm=0.0), ignore_disagreement=True)
    folder = export_pseudo_labels(specs, "902", model_factory=factory, progress=False, options=options)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "weak_c0.nii.gz")))
    box = _case_box(0) > 0
    assert np.array_equal(label == 2, box & ~np.roll(box, 1, axis=1))  # the first row only: outside stays 0
    assert (label == 1).sum() == 45
    assert json.loads((folder / "dataset.json").read_text())["labels"]["ignore"] == 2
    rows = json.loads((folder / "provenance" / "provenance.json").read_text())["cases"]
    assert next(c for c in rows if c["case"] == "weak_c0")["ignored_voxels"] == 15
