"""CT normalisation conversion from the student's statistics to a teacher's."""

from __future__ import annotations

import copy

import pytest
import torch

from nnunet_kd.distillation.ct_normalization import (
    CTIntensityProperties,
    CTNormalizationConverter,
    normalization_conversion_from_plans,
)
from nnunet_kd.errors import ConfigurationError

STUDENT = {"mean": 50.0, "std": 100.0, "percentile_00_5": -1000.0, "percentile_99_5": 500.0, "median": 40.0}
TEACHER = {"mean": -100.0, "std": 200.0, "percentile_00_5": -900.0, "percentile_99_5": 1000.0}


def _plans(props: dict[str, float], schemes: list[str], extra_props: dict | None = None) -> dict:
    per_channel = {"0": props, **(extra_props or {})}
    return {
        "foreground_intensity_properties_per_channel": per_channel,
        "configurations": {
            "3d_fullres": {"normalization_schemes": schemes, "use_mask_for_norm": [False] * len(schemes)},
            "3d_student": {"inherits_from": "3d_fullres", "batch_size": 2},
        },
    }


def test_hand_computed_values() -> None:
    converter = CTNormalizationConverter(STUDENT, TEACHER)
    # HU 0: student (0 - 50)/100 = -0.5 -> teacher (0 + 100)/200 = 0.5
    # HU -950: student -10 -> HU -950, clipped by the teacher to -900 -> (-900 + 100)/200 = -4
    # student value at its upper clip (HU 500): 4.5 -> (500 + 100)/200 = 3
    out = converter(torch.tensor([-0.5, -10.0, 4.5]))
    assert torch.allclose(out, torch.tensor([0.5, -4.0, 3.0]), atol=1e-6)


def test_exact_inside_both_clip_ranges() -> None:
    hu = torch.linspace(-900.0, 500.0, 57)  # the intersection of [-1000, 500] and [-900, 1000]
    student, teacher = CTIntensityProperties.from_mapping(STUDENT), CTIntensityProperties.from_mapping(TEACHER)
    converted = CTNormalizationConverter(STUDENT, TEACHER)(student.normalise(hu))
    assert torch.allclose(converted, teacher.normalise(hu), atol=1e-5)
    # outside the student's range the value is lost: HU 800 reaches the teacher as HU 500 ((500+100)/200 = 3, not 4.5)
    lost = CTNormalizationConverter(STUDENT, TEACHER)(student.normalise(torch.tensor([800.0])))
    assert lost.item() == pytest.approx(3.0) and teacher.normalise(torch.tensor([800.0])).item() == pytest.approx(4.5)


def test_identity_when_statistics_are_equal() -> None:
    converter = CTNormalizationConverter(STUDENT, dict(STUDENT))
    x = torch.randn(2, 1, 3, 3, 3)
    assert converter.is_identity
    assert converter(x) is x


def test_from_plans_converts_only_ct_channels_that_differ() -> None:
    student = _plans(STUDENT, ["CTNormalization", "ZScoreNormalization"])
    teacher = _plans(TEACHER, ["CTNormalization", "ZScoreNormalization"])
    conversion = normalization_conversion_from_plans(student, teacher, "3d_student", "3d_fullres")
    assert conversion.needed and list(conversion.converters) == [0]
    x = torch.tensor([[[-0.5, 4.5], [7.0, -3.0]]])  # (1, 2, 2): channel 0 CT, channel 1 z-scored
    out = conversion(x)
    assert torch.allclose(out[0, 0], torch.tensor([0.5, 3.0]))
    assert torch.equal(out[0, 1], x[0, 1])
    assert torch.equal(x[0, 0], torch.tensor([-0.5, 4.5]))  # input untouched
    same = normalization_conversion_from_plans(student, copy.deepcopy(student), "3d_fullres", "3d_fullres")
    assert not same.needed and same(x) is x


def test_teacher_extra_channel_is_left_to_the_caller() -> None:
    # box-guided teacher: one more (noNorm) channel than the student; only channel 0 is compared
    student = _plans(STUDENT, ["CTNormalization"])
    teacher = _plans(TEACHER, ["CTNormalization", "NoNormalization"])
    assert list(normalization_conversion_from_plans(student, teacher, "3d_fullres", "3d_fullres").converters) == [0]


def test_incompatible_schemes_and_missing_statistics_raise() -> None:
    student = _plans(STUDENT, ["CTNormalization"])
    with pytest.raises(ConfigurationError, match="ZScoreNormalization"):
        normalization_conversion_from_plans(student, _plans(TEACHER, ["ZScoreNormalization"]), "3d_fullres",
                                            "3d_fullres")
    broken = _plans({"mean": 0.0, "std": 1.0}, ["CTNormalization"])
    with pytest.raises(ConfigurationError, match="percentile_00_5"):
        normalization_conversion_from_plans(student, broken, "3d_fullres", "3d_fullres")
    with pytest.raises(ConfigurationError):
        normalization_conversion_from_plans(student, student, "3d_lowres", "3d_fullres")
