"""NSCLC-Radiomics conversion on a synthetic NBIA tree (CT + rt-utils RTSTRUCT), checked voxel by voxel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from _synthetic_sources import new_ids, write_ct_series, write_rtstruct
from scipy import ndimage

from nnunet_kd.dataset_conversion.nsclc_radiomics import NsclcOptions, convert, matching_rois, normalise_roi_name
from nnunet_kd.errors import InputError
from nnunet_kd.synthetic.chest_phantom import PhantomConfig, make_phantom

SPACING = (8.0, 8.0, 8.0)
ORIGIN = (-160.0, -150.0, -250.0)
GOOD = ["LUNG1-001", "LUNG1-002", "LUNG1-005", "LUNG1-006", "LUNG1-007"]


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsclc") / "manifest-1603198545583"
    config = PhantomConfig(shape_zyx=(20, 40, 40), spacing_xyz=SPACING, vessels_per_lung=1, tumours_per_case=(2, 2),
                           max_diameter_mm=40.0)
    truth = {}
    roi_names = {"LUNG1-002": "gtv_1", "LUNG1-004": "gtv-pre-op"}
    for i, patient in enumerate(GOOD + ["LUNG1-003", "LUNG1-004"]):
        phantom = make_phantom(config, rng=10 + i)
        study = root / "NSCLC-Radiomics" / patient / "09-18-2008-StudyID-NA-69331"
        ct_folder = study / "0.000000-NA-82046"
        write_ct_series(ct_folder, phantom.image, SPACING, ORIGIN, new_ids(patient), 0, "")
        lesions, count = ndimage.label(phantom.label)
        assert count >= 1
        primary = (lesions == 1).astype(np.uint8)
        node = (lesions > 1).astype(np.uint8)
        components = {roi_names.get(patient, "GTV-1"): primary, "Lung-Left": phantom.lung_mask}
        if node.any():
            components["GTV-2"] = node
        write_rtstruct(ct_folder, study / "3.000000-NA-78236" / "1-1.dcm", components)
        truth[patient] = (phantom, primary, node)
    # LUNG1-003: one CT slice missing (as LUNG1-014 in the real collection)
    missing = sorted((root / "NSCLC-Radiomics" / "LUNG1-003").rglob("0.000000-NA-82046/*.dcm"))[8]
    missing.unlink()
    return root, truth


@pytest.fixture(scope="module")
def converted(download, tmp_path_factory):
    root, _ = download
    out = tmp_path_factory.mktemp("out") / "Dataset504_NSCLC"
    return out, convert(root, out, NsclcOptions(quiet=True))


def test_primary_gtv_labels_voxel_identical(download, converted):
    _, truth = download
    out, report = converted
    assert report.kept_cases == GOOD
    for patient in GOOD:
        phantom, primary, _ = truth[patient]
        image = sitk.ReadImage(str(out / "imagesTr" / f"{patient}_0000.nii.gz"))
        label = sitk.ReadImage(str(out / "labelsTr" / f"{patient}.nii.gz"))
        assert image.GetOrigin() == pytest.approx(ORIGIN) and image.GetSpacing() == pytest.approx(SPACING)
        assert label.GetOrigin() == image.GetOrigin() and label.GetPixelID() == sitk.sitkUInt8
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), phantom.image)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), primary)


def test_exclusions_and_manifest(converted):
    out, report = converted
    reasons = {row["case"]: row["reason"] for row in report.rows if row["status"] == "excluded"}
    assert "irregular slice spacing: gap of 16.00 mm" in reasons["LUNG1-003"]
    assert "no ROI matches" in reasons["LUNG1-004"] and "gtv-pre-op" in reasons["LUNG1-004"]
    rows = {row["case"]: row for row in json.loads((out / "manifest.json").read_text())["rows"]}
    assert rows["LUNG1-002"]["rois"] == "gtv_1"
    splits = json.loads((out / "splits_final.json").read_text())
    assert sorted(c for fold in splits for c in fold["val"]) == GOOD


def test_merge_all_gtvs(download, tmp_path):
    root, truth = download
    report = convert(root, tmp_path / "all", NsclcOptions(merge_all_gtvs=True, quiet=True, num_folds=2))
    assert "LUNG1-004" in report.kept_cases
    phantom, primary, node = truth["LUNG1-001"]
    assert node.any()  # a second (nodal) GTV exists and must be merged in
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "all" / "labelsTr" / "LUNG1-001.nii.gz")))
    np.testing.assert_array_equal(label, np.maximum(primary, node))
    # rerun into the same folder with the default pattern: LUNG1-004 (no GTV-1) must leave the dataset
    assert (tmp_path / "all" / "labelsTr" / "LUNG1-004.nii.gz").is_file()
    again = convert(root, tmp_path / "all", NsclcOptions(quiet=True, num_folds=2))
    assert "LUNG1-004" not in again.kept_cases
    assert not (tmp_path / "all" / "labelsTr" / "LUNG1-004.nii.gz").exists()
    assert not (tmp_path / "all" / "imagesTr" / "LUNG1-004_0000.nii.gz").exists()


def test_roi_name_matching():
    names = ["GTV-1", "gtv_1", "GTV 1", "GTV1", "GTV-10", "gtv-2", "Lung-Left", "gtv-pre-op"]
    assert normalise_roi_name(" GTV_1 ") == "gtv-1"
    assert matching_rois(names, r"gtv-?1") == ["GTV-1", "gtv_1", "GTV 1", "GTV1"]
    assert matching_rois(names, r"gtv.*") == [n for n in names if n.lower().startswith("gtv")]


def test_no_rtstruct_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no RTSTRUCT"):
        convert(tmp_path, tmp_path / "out")



def test_missing_slice_interpolated_on_request(download, tmp_path):
    root, truth = download
    report = convert(root, tmp_path / "filled", NsclcOptions(quiet=True, interpolate_missing_slices=True, num_folds=2))
    assert "LUNG1-003" in report.kept_cases
    row = next(r for r in report.rows if r["case"] == "LUNG1-003")
    assert row["interpolated_slices"] == 1
    phantom, primary, _ = truth["LUNG1-003"]
    image = sitk.ReadImage(str(tmp_path / "filled" / "imagesTr" / "LUNG1-003_0000.nii.gz"))
    assert image.GetSize() == (40, 40, 20) and image.GetSpacing() == pytest.approx(SPACING)
    hu = sitk.GetArrayFromImage(image)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "filled" / "labelsTr" / "LUNG1-003.nii.gz")))
    gap = 11  # file 1-09.dcm of 20 was deleted; instance 1 is the top slice, so array index 20 - 9
    present = [k for k in range(20) if k != gap]
    np.testing.assert_array_equal(hu[present], phantom.image[present])
    np.testing.assert_array_equal(label[present], primary[present])
    expected = np.rint((phantom.image[gap - 1].astype(np.float32) + phantom.image[gap + 1]) / 2)
    np.testing.assert_array_equal(hu[gap], expected)
    np.testing.assert_array_equal(label[gap], primary[gap - 1])  # nearer neighbour, lower one on a tie
