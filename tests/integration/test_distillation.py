"""Distillation with the real commands: two teachers (box-guided + plain), resume, validation only, student-only
prediction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import BOX_CONFIG, BOX_TEACHER, DATASET_NAME, PLAIN_TEACHER, TINY_CONFIG, WIDE_CONFIG

from nnunet_kd.distillation.frozen_teachers import weights_hash
from nnunet_kd.integrity.checkpoints import load_checkpoint, network_weights
from nnunet_kd.plans import load_plans, resolved_configuration

STUDENT = "nnUNetTrainerMKD_test"


def _teacher_hashes(*folders):
    return {str(f): weights_hash(network_weights(load_checkpoint(f / "fold_0" / "checkpoint_final.pth")))
            for f in folders}


@pytest.fixture(scope="module")
def spec_file(nnunet_env, box_teacher, plain_teacher, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "kd_teachers.json"
    nnunet_env.run("nnunet_kd", "kd-spec", "-d", "901", "--teacher", f"901:{BOX_TEACHER}:{BOX_CONFIG}",
                   "--teacher", f"901:{PLAIN_TEACHER}:{WIDE_CONFIG}:0", "-o", str(path))
    return path


def test_mkd_with_two_teachers_resume_validation_and_student_prediction(nnunet_env, box_teacher, plain_teacher,
                                                                        spec_file, tmp_path):
    before = _teacher_hashes(box_teacher, plain_teacher)
    nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, "0", "-tr", STUDENT, "-device", "cpu",
                   NNUNET_KD_SPEC=str(spec_file))
    fold = nnunet_env.results / DATASET_NAME / f"{STUDENT}__nnUNetPlans__{TINY_CONFIG}" / "fold_0"
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)

    # adapters (the wide teacher has twice the student's channels) are saved beside, never inside, the network
    adapters = checkpoint["kd_adapters"]
    assert adapters and all("adapter" in k for k in adapters)
    assert not [k for k in checkpoint["network_weights"] if "adapter" in k or "feature_losses" in k]
    from nnunet_kd.trainers import nnUNetTrainerMKD  # the student network is the plain plans network

    plans = load_plans(fold.parent / "plans.json")
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    student = nnUNetTrainerMKD.build_network_architecture(manager, manager.get_configuration(TINY_CONFIG), 1, 2, True)
    assert set(checkpoint["network_weights"]) == set(student.state_dict())

    # every component and teacher weight logged once per epoch; spec copied; extra progress plot
    log = checkpoint["logging"]
    for key in ("kd_seg", "kd_mid", "kd_kl", "kd_weight_teacher0", "kd_weight_teacher1"):
        assert len(log[key]) == 2, key
    assert all(abs(a + b - 1) < 1e-5 for a, b in zip(log["kd_weight_teacher0"], log["kd_weight_teacher1"]))
    assert json.loads((fold / "kd_spec.json").read_text())["effective"]["feature_stages"][0] == "encoder.stages.0"
    assert (fold / "progress_kd.png").stat().st_size > 1000
    # the test trainer compared the box channel from the augmentation workers with the boxes of each batch's label
    checked = [line for path in fold.glob("training_log_*.txt") for line in path.read_text().splitlines()
               if "box channel checked on" in line]
    assert checked and int(checked[0].split("checked on ")[1].split()[0]) >= 1, checked
    # and the KL term's deep-supervision weights with nnU-Net's own (the trainer stops on a difference)
    assert any("distillation deep-supervision weights checked" in path.read_text()
               for path in fold.glob("training_log_*.txt"))

    # --c: the teachers are reloaded and the adapters restored (then saved again unchanged: no epoch left to run)
    nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, "0", "-tr", STUDENT, "-device", "cpu", "--c",
                   NNUNET_KD_SPEC=str(spec_file))
    resumed = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert set(resumed["kd_adapters"]) == set(adapters)
    assert all(torch.equal(resumed["kd_adapters"][k], adapters[k]) for k in adapters)

    # --val: nnU-Net's validation alone, from checkpoint_final.pth, which it leaves as it is
    validation = fold / "validation"
    shutil.rmtree(validation)
    nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, "0", "-tr", STUDENT, "-device", "cpu", "--val",
                   NNUNET_KD_SPEC=str(spec_file))
    summary = json.loads((validation / "summary.json").read_text())
    predicted = sorted(p.name for p in validation.glob("*.nii.gz"))
    assert predicted and sorted(Path(c["prediction_file"]).name for c in summary["metric_per_case"]) == predicted
    validated = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert weights_hash(validated["network_weights"]) == weights_hash(resumed["network_weights"])

    # the student predicts alone: no teacher, no boxes, no spec
    out = tmp_path / "student_predictions"
    nnunet_env.run("nnUNetv2_predict", "-i", str(nnunet_env.raw / DATASET_NAME / "imagesTs"), "-o", str(out),
                   "-d", "901", "-c", TINY_CONFIG, "-tr", STUDENT, "-f", "0", "-device", "cpu", "-npp", "0",
                   "-nps", "0", NNUNET_KD_SPEC="/nonexistent/spec.json")
    assert len(list(out.glob("*.nii.gz"))) == 2
    assert _teacher_hashes(box_teacher, plain_teacher) == before  # teachers untouched


def test_dice_lovasz_variant_trains_with_deep_supervision(nnunet_env, box_teacher, plain_teacher, spec_file):
    trainer = "nnUNetTrainerMKD_DiceLovasz_test"
    nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, "0", "-tr", trainer, "-device", "cpu",
                   NNUNET_KD_SPEC=str(spec_file))
    fold = nnunet_env.results / DATASET_NAME / f"{trainer}__nnUNetPlans__{TINY_CONFIG}" / "fold_0"
    log = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["logging"]
    # Seg is 0.2·Dice + 0.3·Lovász: at most 0.5 per output, and nnU-Net's weights sum to 1 (Dice + CE would be ~1.5)
    assert 0 < log["kd_seg"][0] <= 0.5


def _train_error(nnunet_env, spec, fold="1"):
    result = nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, fold, "-tr", STUDENT, "-device", "cpu",
                            check=False, NNUNET_KD_SPEC=str(spec))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("nnunet_kd: error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert not (nnunet_env.results / DATASET_NAME / f"{STUDENT}__nnUNetPlans__{TINY_CONFIG}" / f"fold_{fold}"
                / "checkpoint_latest.pth").exists()
    return errors[0]


def test_bad_specs_stop_before_training_with_one_clear_error(nnunet_env, box_teacher, plain_teacher, spec_file,
                                                             tmp_path):
    assert "not found" in _train_error(nnunet_env, tmp_path / "missing.json")
    malformed = tmp_path / "malformed.json"
    malformed.write_text('{"teachers": [')
    assert "not valid JSON" in _train_error(nnunet_env, malformed)
    valid = json.loads(spec_file.read_text())
    valid["teachers"][0]["folds"] = [0]  # the student runs fold 1 here, the teachers only have fold 0
    spec = json.loads(json.dumps(valid))
    spec["teachers"][1]["folds"] = [3]
    missing_fold = tmp_path / "missing_fold.json"
    missing_fold.write_text(json.dumps(spec))
    assert "fold 3 has no checkpoint_final.pth" in _train_error(nnunet_env, missing_fold)
    # an incompatible teacher: same network, but planned at another spacing
    fake = box_teacher.parent / f"nnUNetTrainerFakeSpacing__nnUNetPlans__{BOX_CONFIG}"
    shutil.copytree(box_teacher, fake, dirs_exist_ok=True)
    plans = json.loads((fake / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["spacing"] = [3.0, 2.5, 2.5]
    (fake / "plans.json").write_text(json.dumps(plans))
    spec = json.loads(json.dumps(valid))
    spec["teachers"][0]["trainer"] = "nnUNetTrainerFakeSpacing"
    incompatible = tmp_path / "incompatible.json"
    incompatible.write_text(json.dumps(spec))
    assert "target spacing" in _train_error(nnunet_env, incompatible)


def test_size_balanced_mkd_trains_with_per_bin_sampling(nnunet_env, box_teacher, plain_teacher, spec_file,
                                                        tmp_path):
    trainer = "nnUNetTrainerMKDSizeBalanced_test"
    spec = json.loads(spec_file.read_text())
    for teacher in spec["teachers"]:
        teacher["folds"] = [0]  # the student trains on fold "all" (no final validation); the teachers have fold 0
    (tmp_path / "kd_teachers.json").write_text(json.dumps(spec))
    nnunet_env.run("nnUNetv2_train", "901", TINY_CONFIG, "all", "-tr", trainer, "-device", "cpu",
                   NNUNET_KD_SPEC=str(tmp_path / "kd_teachers.json"))
    fold = nnunet_env.results / DATASET_NAME / f"{trainer}__nnUNetPlans__{TINY_CONFIG}" / "fold_all"
    assert (fold / "checkpoint_final.pth").is_file()

    # tumour volumes were read once from the preprocessed labels and cached beside the data folder
    plans = load_plans(nnunet_env.preprocessed / DATASET_NAME / "nnUNetPlans.json")
    data_identifier = resolved_configuration(plans, TINY_CONFIG)["data_identifier"]
    cache = json.loads((nnunet_env.preprocessed / DATASET_NAME / f"tumour_volumes_{data_identifier}.json").read_text())
    volumes = cache["volumes_ml"]
    cases = sorted(p.name[: -len(".b2nd")] for p in (nnunet_env.preprocessed / DATASET_NAME / data_identifier)
                   .glob("*.b2nd") if not p.name.endswith("_seg.b2nd"))
    assert sorted(volumes) == cases and all(v >= 0 for v in volumes.values())

    # each case is listed (1 / its bin's size) / (1 / the largest bin's size) times, rounded: here the test trainer's
    # single edge at 25 ml; the training log reports the repeats and equal target probabilities per bin
    in_bin = {case: 0 if v == 0 else 1 + (v >= 25.0) for case, v in volumes.items()}
    sizes = {b: list(in_bin.values()).count(b) for b in set(in_bin.values())}
    expected = {case: round(max(sizes.values()) / sizes[b]) for case, b in in_bin.items()}
    log = "".join(f.read_text() for f in fold.glob("training_log_*.txt"))
    assert "tumour-size-balanced sampling" in log
    logged = {line.split(": ")[1].strip(): int(line.split("repeats ")[1].split(",")[0])
              for line in log.splitlines() if ", repeats " in line}
    assert logged == expected
    bins = [line for line in log.splitlines() if "target probability" in line]
    targets = [float(line.split("target probability ")[1].split(",")[0]) for line in bins]
    assert len(bins) == len(sizes) and all(abs(t - 1 / len(sizes)) < 1e-3 for t in targets)
