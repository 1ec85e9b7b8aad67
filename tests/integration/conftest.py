"""Session fixtures: one phantom dataset, preprocessed once, with a tiny CPU configuration added to its plans."""

from __future__ import annotations

import pytest
from harness import NnunetEnvironment

from nnunet_kd.boxes.cascade_configuration import add_box_guided_configuration
from nnunet_kd.plans import add_configuration, load_plans, small_plain_configuration
from nnunet_kd.synthetic.chest_phantom import PhantomConfig
from nnunet_kd.synthetic.phantom_dataset import write_phantom_dataset

DATASET_ID = 901
DATASET_NAME = "Dataset901_ItPhantom"
TINY_CONFIG = "3d_tiny"
BOX_CONFIG = "3d_tiny_box"
BOX_TEACHER = "nnUNetTrainerBoxGuided_test"
WIDE_CONFIG = "3d_tiny_wide"  # twice the channels of 3d_tiny: a teacher whose features need adapters
PLAIN_TEACHER = "nnUNetTrainerQuickNoMirroring_test"
#: small but anatomically complete: a 320 x 320 x 240 mm chest at 5-6 mm voxels; tumours of 25-50 mm (5-10 voxels)
PHANTOM = PhantomConfig(shape_zyx=(40, 64, 64), spacing_xyz=(5.0, 5.0, 6.0), min_diameter_mm=25.0, max_diameter_mm=50.0)
#: the box-guided teacher trains on tumour-centred crops (as in the paper), much faster to learn than whole images
BOX_PATCH = [24, 32, 32]


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def nnunet_env(tmp_path_factory) -> NnunetEnvironment:
    env = NnunetEnvironment(tmp_path_factory.mktemp("nnunet"))
    env.make_dirs()
    return env


@pytest.fixture(scope="session")
def preprocessed_dataset(nnunet_env: NnunetEnvironment) -> str:
    """Dataset901 (6 training + 2 test phantoms) planned and preprocessed by the real command, plus ``3d_tiny``."""
    write_phantom_dataset(nnunet_env.raw, DATASET_ID, "ItPhantom", num_training=6, num_test=2, seed=3, config=PHANTOM)
    nnunet_env.run("nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres", "-np", "1", "-npfp", "1",
                   "--verify_dataset_integrity")
    plans_file = nnunet_env.preprocessed / DATASET_NAME / "nnUNetPlans.json"
    add_configuration(plans_file, TINY_CONFIG, small_plain_configuration(load_plans(plans_file), features=(8, 16, 32, 64)))
    add_configuration(plans_file, WIDE_CONFIG, small_plain_configuration(load_plans(plans_file), features=(16, 32, 64, 128)))
    add_box_guided_configuration(plans_file, TINY_CONFIG, BOX_CONFIG, patch_size=BOX_PATCH)
    return DATASET_NAME


@pytest.fixture(scope="session")
def box_teacher(nnunet_env: NnunetEnvironment, preprocessed_dataset: str):
    """The test run's box-guided teacher (fold 0, 250 iterations), trained with the real nnUNetv2_train; augmentation
    runs in the main process so that the seeded test trainer is repeatable."""
    nnunet_env.run("nnUNetv2_train", str(DATASET_ID), BOX_CONFIG, "0", "-tr", BOX_TEACHER, "-device", "cpu",
                   nnUNet_n_proc_DA="0")
    return nnunet_env.results / preprocessed_dataset / f"{BOX_TEACHER}__nnUNetPlans__{BOX_CONFIG}"


@pytest.fixture(scope="session")
def plain_teacher(nnunet_env: NnunetEnvironment, preprocessed_dataset: str):
    """A plain (point-guided) teacher, wider than the students, on 3d_tiny_wide (2 iterations: a weak teacher)."""
    nnunet_env.run("nnUNetv2_train", str(DATASET_ID), WIDE_CONFIG, "0", "-tr", PLAIN_TEACHER, "-device", "cpu")
    return nnunet_env.results / preprocessed_dataset / f"{PLAIN_TEACHER}__nnUNetPlans__{WIDE_CONFIG}"
