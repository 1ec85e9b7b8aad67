"""The pipeline's predict stage resumes per model: an interruption costs only the model that was running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnunet_kd.pipeline.profiles import QUICK
from nnunet_kd.pipeline.stages import TeacherStudentPipeline


class Interrupted(Exception):
    pass


def _pipeline(tmp_path: Path, calls: list[str], fail_at: str | None = None) -> TeacherStudentPipeline:
    env = {k: str(tmp_path / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    pipeline = TeacherStudentPipeline(QUICK, tmp_path / "work", env, runner=None)

    def predict(model, out, stage="predict"):
        if model.name == fail_at:
            out.mkdir(parents=True, exist_ok=True)
            (out / "case_0.nii.gz").write_bytes(b"")  # a partial folder, as a killed nnUNetv2_predict leaves
            raise Interrupted(model.name)
        calls.append(model.name)
        out.mkdir(parents=True, exist_ok=True)
        for i in range(QUICK.num_test):
            (out / f"case_{i}.nii.gz").write_bytes(b"")
        return 1.5

    pipeline.predict_test_set = predict
    pipeline.model_cost = lambda model, seconds: {"params": 1.0, "inference s/case": seconds}
    return pipeline


def test_interrupted_predict_stage_redoes_only_unfinished_models(tmp_path):
    calls: list[str] = []
    names = [m.name for m in _pipeline(tmp_path, calls).models]
    with pytest.raises(Interrupted):
        _pipeline(tmp_path, calls, fail_at=names[2])._predict()
    assert calls == names[:2]
    first = _pipeline(tmp_path, calls)
    recorded = json.loads(first.costs_file.read_text())
    assert list(recorded) == [first.prediction_folder(m).name for m in first.models[:2]]
    assert not first._predict_done()

    calls.clear()
    first._predict()
    assert calls == names[2:]  # the interrupted model is redone, the finished ones are not
    assert first._predict_done()
    assert list(json.loads(first.costs_file.read_text())) == [first.prediction_folder(m).name for m in first.models]


def test_a_model_with_missing_predictions_is_predicted_again(tmp_path):
    calls: list[str] = []
    pipeline = _pipeline(tmp_path, calls)
    pipeline._predict()
    victim = pipeline.models[3]
    next(pipeline.prediction_folder(victim).glob("*.nii.gz")).unlink()
    assert not pipeline._predict_done()
    calls.clear()
    pipeline._predict()
    assert calls == [victim.name]
