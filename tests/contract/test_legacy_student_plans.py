"""Plans written by ``add-student`` before the student networks moved to ``nnunet_kd.students`` still build.

``tests/data/plans_written_by_add_student_0.1.json`` was written by version 0.1's ``add_student_configuration`` (a
plain and a dual-output student at width 0.5); its configurations name ``nnunet_kd.networks.<module>.<Class>``.
Checkpoints name trainers, not networks, so a model trained then predicts as long as these names resolve.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_kd.students.depthwise_unet import DepthwiseSeparableResidualUNet
from nnunet_kd.students.dual_output_unet import DualOutputDepthwiseSeparableResidualUNet

PLANS = Path(__file__).resolve().parents[1] / "data" / "plans_written_by_add_student_0.1.json"


@pytest.fixture(scope="module")
def manager() -> PlansManager:
    return PlansManager(json.loads(PLANS.read_text()))


@pytest.mark.parametrize(("configuration", "expected"), [
    ("3d_fullres_student", DepthwiseSeparableResidualUNet),
    ("3d_fullres_student_do", DualOutputDepthwiseSeparableResidualUNet),
])
def test_old_class_paths_build_the_students_through_nnunet(manager, configuration, expected):
    cm = manager.get_configuration(configuration)
    assert cm.network_arch_class_name.startswith("nnunet_kd.networks.")  # the file really has the old names
    network = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                     cm.network_arch_init_kwargs_req_import, 1, 2, allow_init=True,
                                     deep_supervision=False)
    assert type(network) is expected
    with torch.no_grad():
        output = network.eval()(torch.zeros(1, 1, *cm.patch_size))
    assert tuple(output.shape) == (1, 2, *cm.patch_size)


def test_dual_output_trainer_accepts_an_old_student_configuration(manager):
    from nnunet_kd.trainers import nnUNetTrainerDualOutput

    cm = manager.get_configuration("3d_fullres_student")
    network = nnUNetTrainerDualOutput.build_network_architecture(manager, cm, 1, 2, enable_deep_supervision=True)
    assert isinstance(network, DualOutputDepthwiseSeparableResidualUNet)
