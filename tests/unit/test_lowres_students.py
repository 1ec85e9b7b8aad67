"""Lower-resolution students (``add-student --spacing-factor``): the coarser spacing, the patch cut to the coarser
median image, their own preprocessed data, a network nnU-Net builds; bad factors refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_convolutional_students import build
from test_student_plans import small_plans

from nnunet_kd.cli import main
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.students.configuration import add_student_configuration
from nnunet_kd.students.resolution import coarser_resolution_entries, total_strides

FIVE_STAGE_STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]


@pytest.fixture
def plans_file(tmp_path: Path) -> Path:
    plans = small_plans()  # patch 32x64x64, strides 1, 2, 2, 2 -> total stride 8 per axis
    plans["configurations"]["3d_fullres"]["median_image_size_in_voxels"] = [40, 100, 100]
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(plans, indent=4) + "\n")
    return path


def test_total_strides_multiply_the_stage_strides_per_axis():
    assert total_strides(FIVE_STAGE_STRIDES, 3) == [16, 32, 32]
    assert total_strides([1, 2, 2], 3) == [4, 4, 4]


def test_coarser_entries_match_the_hand_computed_example():
    parent = {"spacing": [2.5, 0.8, 0.8], "median_image_size_in_voxels": [100, 400, 400], "patch_size": [80, 160, 160],
              "architecture": {"arch_kwargs": {"strides": FIVE_STAGE_STRIDES}}}
    entries = coarser_resolution_entries(parent, 2.0, "nnUNetPlans_lowres")
    # median 50 x 200 x 200; z: ceil(50 / 16) * 16 = 64 < 80; y, x: ceil(200 / 32) * 32 = 224 > 160 -> 160
    assert entries == {"spacing": [5.0, 1.6, 1.6], "median_image_size_in_voxels": [50, 200, 200],
                       "patch_size": [64, 160, 160], "data_identifier": "nnUNetPlans_lowres"}


def test_a_half_resolution_plain_student_has_its_own_spacing_patch_and_data_and_nnunet_builds_it(plans_file, capsys):
    assert main(["add-student", "-p", str(plans_file), "--kind", "plain", "--width", "0.5",
                 "--spacing-factor", "2"]) == 0
    out = capsys.readouterr().out
    assert "nnUNetv2_preprocess -d <dataset> -plans_name nnUNetPlans -c 3d_fullres_plain_student_x2" in out
    configuration = json.loads(plans_file.read_text())["configurations"]["3d_fullres_plain_student_x2"]
    # median 20 x 50 x 50 at the coarser spacing: patch min(32, 24), min(64, 56)
    assert configuration["spacing"] == [4.0, 2.0, 2.0] and configuration["patch_size"] == [24, 56, 56]
    assert configuration["data_identifier"] == "nnUNetPlans_3d_fullres_plain_student_x2"
    assert configuration["architecture"]["arch_kwargs"]["features_per_stage"] == [16, 32, 64, 128]
    network = build(plans_file, "3d_fullres_plain_student_x2")
    with torch.no_grad():
        assert network(torch.zeros(1, 1, 24, 56, 56)).shape == (1, 2, 24, 56, 56)


@pytest.mark.parametrize("factor", [0.5, 1.0 - 1e-9, -2.0, math.nan, math.inf])
def test_a_spacing_factor_that_is_not_above_one_is_refused_and_the_plans_untouched(plans_file, factor):
    before = plans_file.read_bytes()
    with pytest.raises(ConfigurationError, match="--spacing-factor must be a number above 1"):
        add_student_configuration(plans_file, kind="plain", width_multiplier=0.5, spacing_factor=factor)
    assert plans_file.read_bytes() == before
