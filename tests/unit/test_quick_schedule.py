"""The quick schedule: few epochs, AdamW at its own learning rate with nnU-Net's poly decay."""

from __future__ import annotations

import math

import pytest
import torch

from nnunet_kd.trainers.quick import QuickScheduleMixin, StudyScheduleMixin
from nnunet_kd.trainers.validation_curve import ValidationCasesCurveMixin


class _FakeTrainer:
    """The attributes of nnUNetTrainer that the mixin reads or overrides."""

    def __init__(self, plans, configuration, fold, dataset_json, device):
        self.network = torch.nn.Conv3d(2, 2, 1)
        self.initial_lr, self.weight_decay = 1e-2, 3e-5
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1000, 250, 50
        self.oversample_foreground_percent = getattr(self, "foreground_patch_fraction", 0.33)


class _Quick(QuickScheduleMixin, _FakeTrainer):
    quick_num_epochs = 20


class _QuickTumourCentred(_Quick):
    foreground_patch_fraction = 1.0  # like the box-guided teacher


def test_quick_schedule_samples_at_least_half_tumour_centred_patches():
    assert _Quick({}, "3d_fullres", 0, {}, torch.device("cpu")).oversample_foreground_percent == 0.5
    assert _QuickTumourCentred({}, "3d_fullres", 0, {}, torch.device("cpu")).oversample_foreground_percent == 1.0


def test_schedule_and_optimizer_replace_nnunet_defaults():
    trainer = _Quick({}, "3d_fullres", 0, {}, torch.device("cpu"))
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (20, 40, 2)
    optimizer, scheduler = trainer.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 3e-5
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in trainer.network.parameters()}
    scheduler.step(0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(3e-3)
    scheduler.step(10)  # nnU-Net's poly decay over the quick epochs: lr0 * (1 - epoch / epochs) ** 0.9
    assert optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.5 ** 0.9)


class _FakeTrainerWithSplit(_FakeTrainer):
    def on_train_start(self):
        self.started = True

    def do_split(self):
        return [f"case{i}" for i in range(16)], ["val0"]

    def print_to_log_file(self, *args):
        self.logged = args


class _PerCase(QuickScheduleMixin, _FakeTrainerWithSplit):
    quick_iterations_per_case = 4


class _Fixed(QuickScheduleMixin, _FakeTrainerWithSplit):
    pass


def test_iterations_per_case_make_every_case_seen_equally_often():
    per_case, fixed = (cls({}, "3d_fullres", 0, {}, torch.device("cpu")) for cls in (_PerCase, _Fixed))
    for trainer in (per_case, fixed):
        trainer.on_train_start()
    assert per_case.started and per_case.num_iterations_per_epoch == 4 * 16
    assert "4 per training case, 16 cases" in per_case.logged[0]
    assert fixed.num_iterations_per_epoch == 40


class _Study(StudyScheduleMixin, _FakeTrainer):
    save_every = 50  # nnU-Net's


def test_study_schedule_trains_2000_iterations_whatever_the_dataset_and_checkpoints_every_5_epochs():
    trainer = _Study({}, "3d_fullres", 0, {}, torch.device("cpu"))
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (50, 40, 4)
    assert trainer.quick_iterations_per_case is None and trainer.save_every == 5
    assert isinstance(trainer, ValidationCasesCurveMixin) and trainer.validation_curve_every == 2


class _CurveTrainer:
    """The attributes of nnUNetTrainer that the validation-curve mixin uses, with nnU-Net's logger."""

    def __init__(self, epochs: int):
        from nnunetv2.training.logging.nnunet_logger import MetaLogger

        self.logger, self.num_epochs, self.current_epoch, self.lines = MetaLogger("/nonexistent", False), epochs, 0, []
        self.measured = iter([0.5, 0.7, 0.8])

    def on_train_start(self):
        pass

    def on_epoch_end(self):
        self.current_epoch += 1

    def print_to_log_file(self, *args):
        self.lines.append(" ".join(map(str, args)))


class _Curve(ValidationCasesCurveMixin, _CurveTrainer):
    validation_curve_every = 2

    def validation_cases_dice(self) -> float:
        return next(self.measured)


def test_validation_curve_is_measured_every_few_epochs_and_after_the_last_and_nan_between():
    trainer = _Curve(epochs=5)
    trainer.on_train_start()
    for _ in range(5):
        trainer.on_epoch_end()
    curve = trainer.logger.get_value("val_cases_dice", step=None)
    assert len(curve) == 5 and [math.isnan(v) for v in curve] == [True, False, True, False, False]
    assert [curve[1], curve[3], curve[4]] == [0.5, 0.7, 0.8]  # epochs 2 and 4, and the last
    assert "val_cases_dice" in trainer.logger.get_checkpoint()  # saved with nnU-Net's logs
    assert len(trainer.lines) == 3 and "0.8000" in trainer.lines[-1]
