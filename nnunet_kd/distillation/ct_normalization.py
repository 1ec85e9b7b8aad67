"""Exact conversion of a CT-normalised patch from the student's normalisation to a teacher's.

nnU-Net's ``CTNormalization`` (``nnunetv2/preprocessing/normalization/default_normalization_schemes.py``) maps
Hounsfield units to ``x = (clip(HU, p00_5, p99_5) − mean) / max(std, 1e-8)`` with the dataset's foreground
statistics ``plans['foreground_intensity_properties_per_channel'][str(c)]``. A teacher planned on another dataset
has other statistics; its input is recovered from the student's patch as
``x' = (clip(x · std_s + mean_s, p00_5_t, p99_5_t) − mean_t) / std_t``, evaluated as the equivalent
``clamp(a · x + b, lo', hi')`` with coefficients computed in float64. The result equals the teacher's own
normalisation of the original HU wherever HU lies inside both clip ranges; outside the student's range the
student's clipping has already lost the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.plans import resolved_configuration

CT_SCHEME = "CTNormalization"
_STD_EPS = 1e-8  # nnU-Net's epsilon for fp32 targets
_KEYS = ("mean", "std", "percentile_00_5", "percentile_99_5")


@dataclass(frozen=True)
class CTIntensityProperties:
    """The four statistics nnU-Net's CTNormalization uses for one channel."""

    mean: float
    std: float
    lower: float  # percentile_00_5
    upper: float  # percentile_99_5

    @classmethod
    def from_mapping(cls, props: Mapping[str, Any]) -> CTIntensityProperties:
        """Read ``{'mean', 'std', 'percentile_00_5', 'percentile_99_5', ...}`` as stored in nnU-Net plans.

        Raises:
            ConfigurationError: a key is missing.
        """
        missing = [key for key in _KEYS if key not in props]
        if missing:
            raise ConfigurationError(f"CT intensity properties lack {', '.join(missing)} (have: {', '.join(props)})")
        return cls(float(props["mean"]), float(props["std"]), float(props["percentile_00_5"]),
                   float(props["percentile_99_5"]))

    def normalise(self, hu: Tensor) -> Tensor:
        """nnU-Net's CTNormalization of a HU tensor (reference implementation, used by the tests)."""
        return (hu.clamp(self.lower, self.upper) - self.mean) / max(self.std, _STD_EPS)


class CTNormalizationConverter:
    """Maps a tensor normalised with the student's CT statistics to the teacher's normalisation (one channel)."""

    def __init__(self, student_props: Mapping[str, Any] | CTIntensityProperties,
                 teacher_props: Mapping[str, Any] | CTIntensityProperties) -> None:
        """Args: student_props / teacher_props: plans intensity properties (or ``CTIntensityProperties``)."""
        self.student = _as_properties(student_props)
        self.teacher = _as_properties(teacher_props)
        std_s, std_t = max(self.student.std, _STD_EPS), max(self.teacher.std, _STD_EPS)
        self.scale = std_s / std_t
        self.offset = (self.student.mean - self.teacher.mean) / std_t
        self.lower = (self.teacher.lower - self.teacher.mean) / std_t
        self.upper = (self.teacher.upper - self.teacher.mean) / std_t

    @property
    def is_identity(self) -> bool:
        """True when both sides use the same statistics (then ``__call__`` returns its input)."""
        return self.student == self.teacher

    def __call__(self, x: Tensor) -> Tensor:
        """Args: x: any shape, student-normalised. Returns: same shape and dtype, teacher-normalised."""
        if self.is_identity:
            return x
        return (x * self.scale + self.offset).clamp(self.lower, self.upper)


@dataclass(frozen=True)
class NormalizationConversion:
    """Per-channel converters for the channels whose CT statistics differ; other channels pass unchanged."""

    converters: Mapping[int, CTNormalizationConverter] = field(default_factory=dict)

    @property
    def needed(self) -> bool:
        """True when at least one channel must be converted."""
        return bool(self.converters)

    def __call__(self, x: Tensor) -> Tensor:
        """Args: x: ``(B, C, *spatial)`` student-normalised input. Returns: a converted copy (or ``x`` itself)."""
        if not self.needed:
            return x
        out = x.clone()
        for channel, converter in self.converters.items():
            out[:, channel] = converter(x[:, channel])
        return out


def normalization_conversion_from_plans(student_plans: Mapping[str, Any], teacher_plans: Mapping[str, Any],
                                        student_configuration: str, teacher_configuration: str
                                        ) -> NormalizationConversion:
    """Compare two plans' normalisation and build the conversion the teacher's input needs.

    Channels present in both configurations are compared (a teacher's extra channels, e.g. a box channel, are
    left to the caller). Per channel: both ``CTNormalization`` → a converter if the statistics differ; the same
    non-CT scheme on both sides (per-image z-score, no normalisation) → nothing to do.

    Args:
        student_plans / teacher_plans: nnU-Net plans dicts (``nnUNetPlans.json`` contents).
        student_configuration / teacher_configuration: configuration names, e.g. ``'3d_fullres'``.

    Returns:
        The conversion; ``.needed`` says whether any channel is converted.

    Raises:
        ConfigurationError: the schemes differ on a channel (no exact conversion exists), ``use_mask_for_norm``
            differs for a non-CT scheme, or a plans file lacks the CT statistics.
    """
    student = resolved_configuration(dict(student_plans), student_configuration)
    teacher = resolved_configuration(dict(teacher_plans), teacher_configuration)
    schemes_s, schemes_t = list(student["normalization_schemes"]), list(teacher["normalization_schemes"])
    masks_s = list(student.get("use_mask_for_norm", [False] * len(schemes_s)))
    masks_t = list(teacher.get("use_mask_for_norm", [False] * len(schemes_t)))
    converters: dict[int, CTNormalizationConverter] = {}
    for channel in range(min(len(schemes_s), len(schemes_t))):
        scheme_s, scheme_t = schemes_s[channel], schemes_t[channel]
        if scheme_s != scheme_t:
            raise ConfigurationError(
                f"channel {channel}: the student uses {scheme_s} and the teacher {scheme_t}; the student's patch "
                "cannot be converted exactly — plan the student with the teacher's plans "
                "(nnUNetv2_move_plans_between_datasets)")
        if scheme_s != CT_SCHEME:
            if masks_s[channel] != masks_t[channel]:
                raise ConfigurationError(f"channel {channel}: {scheme_s} with use_mask_for_norm "
                                         f"{masks_s[channel]} (student) vs {masks_t[channel]} (teacher)")
            continue
        converter = CTNormalizationConverter(_channel_properties(student_plans, channel, "student"),
                                             _channel_properties(teacher_plans, channel, "teacher"))
        if not converter.is_identity:
            converters[channel] = converter
    return NormalizationConversion(converters)


def _channel_properties(plans: Mapping[str, Any], channel: int, role: str) -> CTIntensityProperties:
    per_channel = plans.get("foreground_intensity_properties_per_channel", {})
    if str(channel) not in per_channel:
        raise ConfigurationError(f"the {role}'s plans have no foreground_intensity_properties_per_channel entry "
                                 f"for channel {channel}, which its CTNormalization needs")
    return CTIntensityProperties.from_mapping(per_channel[str(channel)])


def _as_properties(props: Mapping[str, Any] | CTIntensityProperties) -> CTIntensityProperties:
    return props if isinstance(props, CTIntensityProperties) else CTIntensityProperties.from_mapping(props)
