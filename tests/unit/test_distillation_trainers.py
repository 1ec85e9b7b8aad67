"""The distillation trainers' own logic, without a dataset: what a variant's name promises, nnU-Net's
deep-supervision weights handed to the objective, pseudo-labelled cases, the Dice + Lovász variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_kd.distillation.spec import parse_spec
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.losses.segmentation import DiceLovaszLoss
from nnunet_kd.trainers.knowledge_distillation import (
    nnUNetTrainerDistillationBase,
    nnUNetTrainerKD,
    nnUNetTrainerKDQuick,
    nnUNetTrainerMKD,
    nnUNetTrainerMKD_ATRC,
    nnUNetTrainerMKD_DiceLovasz,
    nnUNetTrainerMKD_LowLevel,
    nnUNetTrainerMKD_PaperWeights,
    nnUNetTrainerMKD_Uniform,
)
from nnunet_kd.trainers.size_balanced import nnUNetTrainerKDSizeBalanced

TEACHER = {"dataset": 500, "trainer": "nnUNetTrainerBoxGuided", "configuration": "3d_fullres_box"}


def bare(trainer_class):
    """A trainer object with only what the tested method reads (no dataset, no nnU-Net set-up)."""
    return object.__new__(trainer_class)


def effective(trainer_class, **overrides):
    return bare(trainer_class)._effective_config(parse_spec({"teachers": [TEACHER], **overrides}, "spec.json"))


@pytest.mark.parametrize("trainer_class", [nnUNetTrainerKD, nnUNetTrainerKDQuick, nnUNetTrainerKDSizeBalanced])
def test_logits_only_trainers_refuse_feature_stages_from_the_spec(trainer_class):
    assert effective(trainer_class).feature_stages == ()
    with pytest.raises(ConfigurationError, match="sets feature_stages, which .* fixes"):
        effective(trainer_class, feature_stages=["encoder.stages.0"])


def test_mkd_takes_its_stages_from_the_spec_but_needs_at_least_one():
    assert effective(nnUNetTrainerMKD).feature_stages == ("encoder.stages.0", "encoder.stages.1", "encoder.stages.2")
    assert effective(nnUNetTrainerMKD, feature_stages=["decoder.stages.0"]).feature_stages == ("decoder.stages.0",)
    with pytest.raises(ConfigurationError, match="distils features"):
        effective(nnUNetTrainerMKD, feature_stages=[])


@pytest.mark.parametrize(("trainer_class", "key", "value"), [
    (nnUNetTrainerMKD_LowLevel, "feature_stages", ["encoder.stages.2"]),
    (nnUNetTrainerMKD_ATRC, "feature_loss", "mse"),
    (nnUNetTrainerMKD_Uniform, "weighting", "adaptive"),
    (nnUNetTrainerMKD_PaperWeights, "weighting", "adaptive"),
])
def test_a_variant_keeps_what_its_name_promises(trainer_class, key, value):
    with pytest.raises(ConfigurationError, match=f"sets {key}"):
        effective(trainer_class, **{key: value})
    assert effective(trainer_class, temperature=4.0).temperature == 4.0  # what the name does not promise is free


def test_the_objective_gets_nnunets_own_deep_supervision_weights():
    # nnU-Net's _build_loss: 1/2^i per output, the last one 0, normalised; the KL term must use the same weights
    trainer = bare(nnUNetTrainerMKD)
    trainer.loss = DeepSupervisionWrapper(lambda x, y: 0, np.array([4 / 7, 2 / 7, 1 / 7, 0.0]))
    assert trainer.deep_supervision_weights() == pytest.approx([4 / 7, 2 / 7, 1 / 7, 0.0])
    trainer.loss = lambda x, y: 0  # deep supervision off
    assert trainer.deep_supervision_weights() == [1.0]


def test_pseudo_labelled_cases_of_a_batch_are_not_trusted():
    trainer = bare(nnUNetTrainerKD)
    trainer.kd_pseudo_labelled_cases, trainer.device = frozenset({"weak_001"}), torch.device("cpu")
    assert trainer.trusted_samples(["strong_004", "weak_001", "weak_002"]).tolist() == [True, False, True]


class _LabelManager:
    has_ignore_label = False
    ignore_label = None


class _ConfigurationManager:
    batch_dice = True


def test_dice_lovasz_variant_wraps_the_papers_loss_with_nnunets_deep_supervision_weights(monkeypatch):
    weights = np.array([8 / 15, 4 / 15, 2 / 15, 1 / 15])
    monkeypatch.setattr(nnUNetTrainer, "_build_loss", lambda self: DeepSupervisionWrapper(None, weights))
    trainer = bare(nnUNetTrainerMKD_DiceLovasz)
    trainer.label_manager, trainer.configuration_manager = _LabelManager(), _ConfigurationManager()
    loss = trainer._build_loss()
    assert isinstance(loss, DeepSupervisionWrapper) and isinstance(loss.loss, DiceLovaszLoss)
    assert list(loss.weight_factors) == pytest.approx(list(weights))
    assert (loss.loss.dice_weight, loss.loss.lovasz_weight) == (0.2, 0.3)
    logits = [torch.randn(2, 2, 4, 8, 8), torch.randn(2, 2, 2, 4, 4), torch.randn(2, 2, 1, 2, 2),
              torch.randn(2, 2, 1, 1, 1)]
    targets = [(torch.rand(2, 1, *o.shape[2:]) > 0.5).float() for o in logits]
    expected = sum(w * DiceLovaszLoss()(o, t) for w, o, t in zip(weights, logits, targets, strict=True))
    assert loss(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)


def test_dice_lovasz_variant_leaves_the_ignore_label_out_of_its_loss(monkeypatch):
    monkeypatch.setattr(nnUNetTrainer, "_build_loss", lambda self: DeepSupervisionWrapper(None, np.array([1.0, 0.0])))
    trainer = bare(nnUNetTrainerMKD_DiceLovasz)
    trainer.label_manager = type("WithIgnore", (), {"has_ignore_label": True, "ignore_label": 2})()
    trainer.configuration_manager = _ConfigurationManager()
    loss = trainer._build_loss()
    assert loss.loss.ignore_label == 2
    logits = [torch.randn(1, 2, 2, 4, 4), torch.randn(1, 2, 1, 2, 2)]
    targets = [(torch.rand(1, 1, *o.shape[2:]) > 0.5).float() for o in logits]
    ignored = [t.clone() for t in targets]
    ignored[0][0, 0, 0] = 2.0  # the first slice of the full-resolution target is ignored
    on_the_rest = DiceLovaszLoss()(logits[0][:, :, 1:], targets[0][:, :, 1:])  # the loss of the other slice only
    assert loss(logits, ignored).item() == pytest.approx(on_the_rest.item(), rel=1e-6)


def test_distillation_base_is_not_a_variant():
    assert nnUNetTrainerDistillationBase.fixed_by_name() == frozenset()
    assert nnUNetTrainerKD.fixed_by_name() == {"feature_stages"}
