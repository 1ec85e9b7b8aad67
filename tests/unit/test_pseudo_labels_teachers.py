"""Teacher specifications (command line and JSON), model-folder resolution, part temporaries, command errors."""

from __future__ import annotations

import json

import pytest

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.pseudo_labels import layout
from nnunet_kd.pseudo_labels.teacher_requests import TeacherRequest, load_teacher_file, parse_teacher, resolve_teacher


def test_parse_teacher_fields_and_defaults():
    spec = parse_teacher("901:nnUNetTrainerBoxGuided:3d_fullres_box:0,1:2.5")
    assert spec == TeacherRequest("901", "nnUNetTrainerBoxGuided", "3d_fullres_box", "nnUNetPlans", ("0", "1"), 2.5)
    spec = parse_teacher("Dataset500_Strong:nnUNetTrainer__nnUNetResEncUNetMPlans:3d_fullres")
    assert (spec.trainer, spec.plans, spec.folds, spec.weight) == ("nnUNetTrainer", "nnUNetResEncUNetMPlans", None, 1.0)
    assert parse_teacher("901:T:c:all").folds == ("all",)
    assert parse_teacher("901:T:c::0.5").folds is None and parse_teacher("901:T:c::0.5").weight == 0.5


@pytest.mark.parametrize("text", ["901:T", "901::c", "901:T:c:0:heavy", "1:2:3:4:5:6"])
def test_parse_teacher_rejects_malformed_text(text):
    with pytest.raises(ConfigurationError, match="teacher"):
        parse_teacher(text)


def test_teacher_file(tmp_path):
    path = tmp_path / "teachers.json"
    path.write_text(json.dumps({"teachers": [
        {"dataset": 901, "trainer": "T", "configuration": "c", "folds": [0, 1], "weight": 2},
        {"dataset": "902", "trainer": "P", "configuration": "c2", "plans": "Other", "folds": "all"},
    ]}))
    assert load_teacher_file(path) == [TeacherRequest("901", "T", "c", "nnUNetPlans", ("0", "1"), 2.0),
                                       TeacherRequest("902", "P", "c2", "Other", ("all",), 1.0)]
    path.write_text(json.dumps([{"dataset": 1, "trainer": "T", "configuration": "c", "fold": 0}]))
    with pytest.raises(ConfigurationError, match="unknown key"):
        load_teacher_file(path)


@pytest.fixture
def results(tmp_path, monkeypatch):
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / key).mkdir()
        monkeypatch.setenv(key, str(tmp_path / key))
    folder = tmp_path / "nnUNet_results" / "Dataset901_X" / "T__nnUNetPlans__c_box"
    for fold in (0, 2):
        (folder / f"fold_{fold}").mkdir(parents=True)
        (folder / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
    (folder / "fold_1").mkdir()  # unfinished fold: no checkpoint
    (folder / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0,
                                                     "tumor": 1}, "file_ending": ".nii.gz"}))
    plans = {"configurations": {"c": {"patch_size": [8, 8, 8]}, "c_box": {"inherits_from": "c", "previous_stage": "b"},
                                "c_child": {"inherits_from": "c_box"}}}
    (folder / "plans.json").write_text(json.dumps(plans))
    return folder


def test_resolve_teacher_finds_folds_and_box_input(results):
    teacher = resolve_teacher(TeacherRequest("901", "T", "c_box"))
    assert teacher.folder == results and teacher.folds == ("0", "2") and teacher.box_guided
    assert teacher.labels == {"background": 0, "tumor": 1} and teacher.num_channels == 1
    assert teacher.name == "Dataset901_X:T__nnUNetPlans__c_box:0,2"
    with pytest.raises(ConfigurationError, match=r"fold\(s\) 1"):
        resolve_teacher(TeacherRequest("901", "T", "c_box", folds=("0", "1")))
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_teacher(TeacherRequest("901", "T", "c"))


def test_previous_stage_is_inherited(results):
    (results.parent / "T__nnUNetPlans__c_child").symlink_to(results)
    (results.parent / "T__nnUNetPlans__c").symlink_to(results)
    assert resolve_teacher(TeacherRequest("901", "T", "c_child")).box_guided
    assert not resolve_teacher(TeacherRequest("901", "T", "c")).box_guided


def test_stale_temporaries_are_removed_only_for_the_parts_own_cases(tmp_path):
    for sub in (layout.IMAGES, layout.LABELS):
        (tmp_path / sub).mkdir()
    images, labels = tmp_path / layout.IMAGES, tmp_path / layout.LABELS
    mine = [images / ".weak_a_0000.tmp-1234abcd.nii.gz", labels / ".weak_a.tmp-1.nii.gz"]
    other = [images / ".weak_b_0000.tmp-1234abcd.nii.gz", labels / ".weak_b.tmp-2.nii.gz"]
    finished = tmp_path / layout.LABELS / "weak_a.nii.gz"
    for path in mine + other + [finished]:
        path.write_bytes(b"x")
    assert layout.remove_stale_temporaries(tmp_path, ["weak_a"]) == 2
    assert not any(p.exists() for p in mine) and all(p.exists() for p in other) and finished.exists()
    assert layout.remove_stale_temporaries(tmp_path) == 2 and not any(p.exists() for p in other)


def test_command_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    from nnunet_kd.cli import main

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (tmp_path / key).mkdir()
        monkeypatch.setenv(key, str(tmp_path / key))
    assert main(["export-pseudo-labels", "-t", "901:T", "-w", "902"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("nnunet_kd export-pseudo-labels: error: teacher '901:T'") and "\n" not in error
    assert main(["export-pseudo-labels", "-w", "902"]) == 2
    assert "no teacher given" in capsys.readouterr().err
    assert main(["merge-pseudo-labels", "-o", str(tmp_path)]) == 2
    assert "is not a pseudo-label export" in capsys.readouterr().err
