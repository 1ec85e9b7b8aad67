"""The real Lung-PET-CT-Dx patient A0002 converts: both CT series, all 18 boxes, boxes where the XMLs put them.

Data: Li, P., Wang, S., Li, T., Lu, J., HuangFu, Y., Wang, D. (2020). A Large-Scale CT and PET/CT Dataset for Lung
Cancer Diagnosis (Lung-PET-CT-Dx) [Data set]. The Cancer Imaging Archive.
https://doi.org/10.7937/TCIA.2020.NNC2-0461 — Creative Commons Attribution 4.0 International.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings
from nnunet_kd.dataset_conversion.lung_pet_ct_dx import LungPetCtDxOptions, convert

#: a folder with patient A0002 as TCIA's download lays it out (``Lung-PET-CT-Dx/manifest-*/...`` and
#: ``Annotation/A0002``); the test is skipped without it
SAMPLE_VARIABLE = "NNUNET_KD_LUNG_PET_CT_DX_SAMPLE"
SAMPLE = Path(os.environ.get(SAMPLE_VARIABLE, "") or "/nonexistent")
SERIES_ROOT = SAMPLE / "Lung-PET-CT-Dx" / "manifest-1675442780019" / "Lung-PET-CT-Dx" / "Lung_Dx-A0002"
pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"set {SAMPLE_VARIABLE} to a Lung-PET-CT-Dx download "
                                "with patient A0002 to run the real-data conversion test")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "Dataset502_LungPETCTDx"
    options = LungPetCtDxOptions(write_coarse_labels=True, crop=LungCropSettings(method="classical"), quiet=True)
    return out, convert(SAMPLE, out, options=options)


def _xml_boxes() -> dict[str, tuple[int, int, int, int]]:
    """``{SOPInstanceUID: (xmin, ymin, xmax, ymax)}`` read directly from the 18 XML files."""
    boxes = {}
    for path in sorted((SAMPLE / "Annotation" / "A0002").glob("*.xml")):
        box = ElementTree.parse(path).getroot().find("object/bndbox")
        boxes[path.stem] = tuple(int(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
    return boxes


def _slice_z() -> dict[str, float]:
    """``{SOPInstanceUID: z}`` of every slice of both CT series."""
    positions = {}
    for path in SERIES_ROOT.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        positions[ds.SOPInstanceUID] = float(ds.ImagePositionPatient[2])
    return positions


def test_both_series_found_and_all_boxes_resolved(converted):
    out, report = converted
    ct_rows = [r for r in report.rows if r["patient"] == "A0002"]
    assert len(ct_rows) == 2 and {r["status"] for r in ct_rows} == {"kept", "excluded"}
    assert report.annotation_counts["files"] == 18
    assert report.annotation_counts["resolved"] == 18
    assert report.annotation_counts["projected_from_sibling_series"] > 0
    kept = next(r for r in ct_rows if r["status"] == "kept")
    assert kept["box_files_projected"] == 18
    assert len(report.missing_series) == 2  # A0001's two series are in metadata.csv, not on disk
    assert {r["patient"] for r in report.rows if r["status"] == "missing"} == {"A0001"}


def test_box_mask_is_exactly_the_xml_boxes(converted):
    out, report = converted
    case = report.kept_cases[0]
    row = next(r for r in report.rows if r["case"] == case)
    (z0, _), (y0, _), (x0, _) = row["crop_zyx"]
    image = sitk.ReadImage(str(out / "imagesTr" / f"{case}_0000.nii.gz"))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "boxesTr" / f"{case}.nii.gz")))
    z_of = _slice_z()
    lowest = min(z_of.values())
    expected = np.zeros((30, 512, 512), np.uint8)
    for uid, (xmin, ymin, xmax, ymax) in _xml_boxes().items():
        k = int(round((z_of[uid] - lowest) / 8.0))
        expected[k, ymin : ymax + 1, xmin : xmax + 1] = 1
    depth, rows, cols = mask.shape
    np.testing.assert_array_equal(mask, expected[z0 : z0 + depth, y0 : y0 + rows, x0 : x0 + cols])
    assert expected.sum() == mask.sum()  # the crop kept every box voxel
    assert image.GetOrigin()[2] == pytest.approx(lowest + 8.0 * z0)
    # boxes sit on the tumour (soft tissue), whereas the same rectangles mirrored into the other lung are air
    hu = sitk.GetArrayFromImage(image)
    on_box = hu[mask > 0]
    mirrored = hu[:, :, ::-1][mask > 0]
    assert np.median(on_box) > -300 and np.median(mirrored) < -600


def test_image_matches_simpleitk_series_reader(converted):
    out, report = converted
    case = report.kept_cases[0]
    row = next(r for r in report.rows if r["case"] == case)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(Path(row["folder"]))))
    reference = reader.Execute()
    (z0, z1), (y0, y1), (x0, x1) = row["crop_zyx"]
    reference = reference[x0:x1, y0:y1, z0:z1]
    ours = sitk.ReadImage(str(out / "imagesTr" / f"{case}_0000.nii.gz"))
    assert ours.GetOrigin() == pytest.approx(reference.GetOrigin(), abs=1e-3)
    assert ours.GetSpacing() == pytest.approx(reference.GetSpacing(), abs=1e-4)
    assert ours.GetDirection() == pytest.approx(reference.GetDirection())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), np.maximum(sitk.GetArrayFromImage(reference), -1024))


def test_output_passes_nnunet_verify_dataset_integrity(converted):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    out, _ = converted
    verify_dataset_integrity(str(out), 1)
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1
