"""Teacher specification: parsing, validation messages, the command-line teacher syntax, idempotent writing."""

from __future__ import annotations

import json

import pytest

from nnunet_kd.distillation.spec import (
    SPEC_ENV,
    load_spec,
    parse_spec,
    parse_teacher_argument,
    parse_teacher_stages_argument,
    spec_path,
    write_spec,
)
from nnunet_kd.errors import ConfigurationError

TEACHER = {"dataset": 500, "trainer": "nnUNetTrainerBoxGuided", "configuration": "3d_fullres_box"}


def test_defaults_and_overrides():
    spec = parse_spec({"teachers": [TEACHER, {**TEACHER, "folds": [0, 1], "weight": 2}], "temperature": 4.0})
    first, second = spec.teachers
    assert first.dataset == "500" and first.plans == "nnUNetPlans" and first.folds == "same"
    assert first.checkpoint == "checkpoint_final.pth" and first.weight is None
    assert first.resolved_folds(3) == (3,) and second.resolved_folds(3) == (0, 1) and second.weight == 2.0
    assert spec.overrides == {"temperature": 4.0}
    assert first.feature_stages is None and "feature_stages" not in spec.to_json()["teachers"][0]


def test_teacher_feature_stages_round_trip():
    stages = ["down_projection", "eva.blocks.5"]
    spec = parse_spec({"teachers": [{**TEACHER, "feature_stages": stages}], "feature_stages": ["a", "b"]})
    assert spec.teachers[0].feature_stages == tuple(stages)
    assert parse_spec(spec.to_json()).teachers[0].feature_stages == tuple(stages)


@pytest.mark.parametrize(
    "obj, message",
    [
        ([], "expected an object"),
        ({"teachers": []}, "at least one teacher"),
        ({"teachers": [{"dataset": 1}]}, "lacks trainer, configuration"),
        ({"teachers": [{**TEACHER, "fold": 0}]}, "unknown keys"),
        ({"teachers": [{**TEACHER, "folds": []}]}, "folds must be"),
        ({"teachers": [{**TEACHER, "weight": -1}]}, "weight must be a positive"),
        ({"teachers": [TEACHER], "temperature": 0}, "invalid temperature"),
        ({"teachers": [TEACHER], "weighting": "best"}, "invalid weighting"),
        ({"teachers": [TEACHER], "weighting": "fixed"}, "needs a weight for every teacher"),
        ({"teachers": [TEACHER], "feature_loss": "l1"}, "invalid feature_loss"),
        ({"teachers": [TEACHER], "T": 2}, "unknown keys"),
        ({"teachers": [{**TEACHER, "feature_stages": "down_projection"}]}, "feature_stages must be a non-empty list"),
        ({"teachers": [{**TEACHER, "feature_stages": []}]}, "feature_stages must be a non-empty list"),
        ({"teachers": [{**TEACHER, "feature_stages": ["eva", ""]}]}, "feature_stages must be a non-empty list"),
    ],
)
def test_invalid_specs_name_the_problem(obj, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_spec(obj, "spec.json")


def test_load_spec_errors_and_location(tmp_path, monkeypatch):
    monkeypatch.delenv(SPEC_ENV, raising=False)
    assert spec_path(tmp_path) == tmp_path / "kd_teachers.json"
    with pytest.raises(ConfigurationError, match="not found"):
        load_spec(tmp_path / "kd_teachers.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        load_spec(broken)
    monkeypatch.setenv(SPEC_ENV, str(broken))
    assert spec_path(tmp_path) == broken


def test_teacher_argument_syntax():
    assert parse_teacher_argument("500:T:3d") == {"dataset": "500", "trainer": "T", "configuration": "3d"}
    assert parse_teacher_argument("500:T:3d:0,1:0.5") == {"dataset": "500", "trainer": "T", "configuration": "3d",
                                                          "folds": [0, 1], "weight": 0.5}
    assert parse_teacher_argument("500:T:3d:same")["folds"] == "same"
    with pytest.raises(ConfigurationError, match="expected DATASET"):
        parse_teacher_argument("500:T")


def test_kd_spec_command_writes_per_teacher_stages(tmp_path):
    from nnunet_kd.cli import main

    path = tmp_path / "spec.json"
    assert main(["kd-spec", "-d", "500", "-o", str(path), "--teacher", "500:T:3d", "--teacher", "504:P:3d",
                 "--feature-stages", "encoder.stages.0", "encoder.stages.2",
                 "--teacher-stages", "1=down_projection, eva.blocks.5"]) == 0
    teachers = load_spec(path).teachers
    assert teachers[0].feature_stages is None
    assert teachers[1].feature_stages == ("down_projection", "eva.blocks.5")
    for bad, message in (("2=eva", "only 2 teachers"), ("x=eva", "expected INDEX=NAME"), ("1=", "expected INDEX")):
        with pytest.raises(ConfigurationError, match=message):
            parse_teacher_stages_argument(bad, 2)


def test_write_spec_is_idempotent_and_refuses_to_clobber(tmp_path):
    path = tmp_path / "kd_teachers.json"
    spec = {"teachers": [TEACHER]}
    assert write_spec(path, spec) is True
    stamp = path.stat().st_mtime_ns
    assert write_spec(path, spec) is False and path.stat().st_mtime_ns == stamp
    with pytest.raises(ConfigurationError, match="--overwrite"):
        write_spec(path, {"teachers": [TEACHER], "alpha": 0.5})
    assert json.loads(path.read_text()) == spec
    assert write_spec(path, {"teachers": [TEACHER], "alpha": 0.5}, overwrite=True) is True


def test_teacher_argument_takes_plans_and_refuses_bad_folds_and_weights_with_one_message():
    entry = parse_teacher_argument("500:nnUNetTrainer__nnUNetResEncUNetMPlans:3d_fullres:all")
    assert entry == {"dataset": "500", "trainer": "nnUNetTrainer", "plans": "nnUNetResEncUNetMPlans",
                     "configuration": "3d_fullres", "folds": ["all"]}
    for text, message in (("500:T:3d:0:heavy", "weight 'heavy' is not a number"), ("500:T:3d:0:-1", "positive"),
                          ("500:T:3d:x", "folds must be numbers")):
        with pytest.raises(ConfigurationError, match=message):
            parse_teacher_argument(text)
