"""Synthetic chest-CT phantoms: tissue HU, tumour sizes, label/box consistency, determinism, dataset format."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage, stats

from nnunet_kd.boxes.axial_boxes import label_lesions
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.synthetic.chest_phantom import PhantomConfig, Tissue, case_rng, make_phantom, sample_diameters
from nnunet_kd.synthetic.phantom_dataset import write_phantom_dataset

SMALL = PhantomConfig(shape_zyx=(40, 64, 64), spacing_xyz=(5.0, 5.0, 6.0), max_diameter_mm=45.0)


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom(PhantomConfig(), case_rng(7, "test", i)) for i in range(4)]


# expected mean HU of each tissue's interior (eroded, so partial volume does not count), with the noise sd 15 HU
HU_RANGES = {
    Tissue.AIR: (-1010, -980),
    Tissue.FAT: (-130, -70),
    Tissue.SOFT_TISSUE: (20, 60),
    Tissue.LUNG: (-900, -800),
    Tissue.BONE: (250, 1000),
    Tissue.HEART: (25, 65),
}


def test_tissue_interiors_have_their_hu(phantoms):
    for phantom in phantoms:
        for tissue, (low, high) in HU_RANGES.items():
            interior = ndimage.binary_erosion(phantom.tissues == tissue)
            assert interior.sum() > 20, tissue
            mean = float(phantom.image[interior].mean())
            assert low <= mean <= high, (tissue.name, mean)


def test_lungs_contain_soft_tissue_vessels_and_airways_exist(phantoms):
    for phantom in phantoms:
        vessels = phantom.tissues == Tissue.VESSEL
        assert vessels.sum() > 50
        assert phantom.lung_mask[vessels].all()  # vessels lie inside the lungs: the hard negatives
        assert (phantom.tissues == Tissue.AIRWAY).sum() > 50
        # a vessel voxel is much denser than lung parenchyma in the noise-free map, and brighter on average
        assert phantom.image[vessels].mean() > phantom.image[phantom.tissues == Tissue.LUNG].mean() + 300


def test_tumours_are_soft_tissue_inside_the_lung(phantoms):
    for phantom in phantoms:
        tumour = phantom.label.astype(bool)
        assert tumour.any()
        assert phantom.lung_mask[tumour].all()
        interior = ndimage.binary_erosion(tumour)
        if interior.sum() >= 10:
            assert 0 <= phantom.image[interior].mean() <= 90
        for spec in phantom.tumours:
            assert 30 <= spec.hu <= 60


def test_juxtapleural_tumours_touch_the_wall_and_intrapulmonary_ones_do_not():
    seen = set()
    for index in range(30):
        phantom = make_phantom(SMALL, case_rng(3, "placement", index))
        components, _ = label_lesions(phantom.label)
        for spec in phantom.tumours:
            lesion = components == components[spec.center_zyx]
            neighbours = ndimage.binary_dilation(lesion) & ~lesion
            touches_non_lung = (~phantom.lung_mask[neighbours]).any()
            assert touches_non_lung == (spec.placement != "intrapulmonary"), spec
            seen.add(spec.placement)
    assert seen == {"intrapulmonary", "juxtapleural", "juxtamediastinal"}


def test_sampled_diameters_follow_the_truncated_lognormal():
    config = PhantomConfig()
    draws = sample_diameters(config, np.random.default_rng(0), 20000)
    assert draws.min() >= config.min_diameter_mm and draws.max() <= config.max_diameter_mm
    # independent expectation: scipy's log-normal with the moments of MSD-Lung (Table 1: 37.63 +- 20.08 mm)
    sigma = math.sqrt(math.log(1 + (20.08 / 37.63) ** 2))
    dist = stats.lognorm(s=sigma, scale=37.63 / math.sqrt(1 + (20.08 / 37.63) ** 2))
    a, b = dist.cdf(config.min_diameter_mm), dist.cdf(config.max_diameter_mm)
    grid = np.linspace(config.min_diameter_mm, config.max_diameter_mm, 20001)
    pdf = dist.pdf(grid) / (b - a)
    expected_mean = np.trapezoid(grid * pdf, grid)
    assert abs(draws.mean() - expected_mean) < 0.5
    untruncated = dist.rvs(size=20000, random_state=1)  # checks the fitted parameters reproduce Table 1
    assert abs(untruncated.mean() - 37.63) < 1.0 and abs(untruncated.std() - 20.08) < 1.5


def test_rasterised_tumour_volume_matches_requested_diameter():
    ratios = []
    for index in range(20):
        phantom = make_phantom(SMALL, case_rng(11, "volume", index))
        voxel = float(np.prod(SMALL.spacing_xyz))
        components, _ = label_lesions(phantom.label)
        for spec in phantom.tumours:
            if spec.placement != "intrapulmonary":
                continue  # juxta tumours are truncated by the wall on purpose
            volume = (components == components[spec.center_zyx]).sum() * voxel
            ratios.append(volume / (math.pi / 6 * spec.diameter_mm**3))
    assert len(ratios) >= 5
    assert 0.75 <= float(np.median(ratios)) <= 1.25


def test_same_seed_same_phantom_other_seed_other_phantom():
    a = make_phantom(SMALL, case_rng(5, "strong", 2))
    b = make_phantom(SMALL, case_rng(5, "strong", 2))
    c = make_phantom(SMALL, case_rng(5, "strong", 3))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.tumours == b.tumours
    assert not np.array_equal(a.image, c.image)


def test_impossible_requests_are_refused():
    with pytest.raises(ConfigurationError, match="larger than the lung"):
        make_phantom(PhantomConfig(max_diameter_mm=300.0), 0)
    with pytest.raises(ConfigurationError):
        PhantomConfig(min_diameter_mm=50, max_diameter_mm=20).validate()
    with pytest.raises(ConfigurationError):
        PhantomConfig(placement_probabilities=(0.5, 0.5, 0.5)).validate()


@pytest.fixture(scope="module")
def strong_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return write_phantom_dataset(root, 990, "UnitStrong", num_training=3, num_test=1, seed=1, config=SMALL)


def test_written_boxes_are_the_tight_rectangles_of_each_lesion(strong_dataset):
    for label_file in sorted((strong_dataset / "labelsTr").glob("*.nii.gz")):
        label_image = sitk.ReadImage(str(label_file))
        box_image = sitk.ReadImage(str(strong_dataset / "boxesTr" / label_file.name))
        assert box_image.GetSpacing() == label_image.GetSpacing() and box_image.GetOrigin() == label_image.GetOrigin()
        label = sitk.GetArrayFromImage(label_image)
        boxes = sitk.GetArrayFromImage(box_image)
        assert not (label.astype(bool) & ~boxes.astype(bool)).any()  # every labelled voxel is inside a box
        expected = np.zeros_like(boxes)
        components, count = label_lesions(label)
        for lesion in range(1, count + 1):
            for z in np.unique(np.nonzero(components == lesion)[0]):
                rows, cols = np.nonzero(components[z] == lesion)
                expected[z, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = 1
        np.testing.assert_array_equal(boxes, expected)


def test_dataset_is_accepted_by_nnunet_and_rerun_is_a_no_op(strong_dataset):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    dataset_json = json.loads((strong_dataset / "dataset.json").read_text())
    assert dataset_json["channel_names"] == {"0": "CT"} and dataset_json["numTraining"] == 3
    verify_dataset_integrity(str(strong_dataset), num_processes=1)
    stamp = (strong_dataset / "phantoms.json").stat().st_mtime_ns
    again = write_phantom_dataset(strong_dataset.parent, 990, "UnitStrong", num_training=3, num_test=1, seed=1,
                                  config=SMALL)
    assert again == strong_dataset and (strong_dataset / "phantoms.json").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigurationError, match="different request"):
        write_phantom_dataset(strong_dataset.parent, 990, "UnitStrong", num_training=4, config=SMALL)


def test_rerun_writes_again_a_dataset_whose_files_were_changed_or_removed(tmp_path, capsys):
    strong = write_phantom_dataset(tmp_path, 992, "UnitRewrite", num_training=2, num_test=1, seed=3, config=SMALL)
    label = strong / "labelsTr" / "strong_001.nii.gz"
    original = label.read_bytes()
    label.unlink()
    (strong / "boxesTs" / "strong_t000.nii.gz").write_bytes(b"edited")
    capsys.readouterr()
    write_phantom_dataset(tmp_path, 992, "UnitRewrite", num_training=2, num_test=1, seed=3, config=SMALL)
    assert "files changed or removed since it was written; writing it again" in capsys.readouterr().out
    assert label.read_bytes() == original
    assert sitk.ReadImage(str(strong / "boxesTs" / "strong_t000.nii.gz")).GetSize() == SMALL.shape_zyx[::-1]
    write_phantom_dataset(tmp_path, 992, "UnitRewrite", num_training=2, num_test=1, seed=3, config=SMALL)
    assert "writing it again" not in capsys.readouterr().out


def test_weak_dataset_hides_ground_truth_and_failed_request_leaves_nothing(tmp_path):
    weak = write_phantom_dataset(tmp_path, 991, "UnitWeak", num_training=2, role="weak", config=SMALL)
    assert not (weak / "labelsTr").exists()
    assert sorted(p.name for p in (weak / "referenceTr").iterdir()) == sorted(
        p.name for p in (weak / "boxesTr").iterdir()
    )
    with pytest.raises(ConfigurationError):
        write_phantom_dataset(tmp_path, 992, "Impossible", num_training=2,
                              config=PhantomConfig(max_diameter_mm=500.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [weak.name]
