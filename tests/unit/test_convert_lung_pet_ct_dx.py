"""Lung-PET-CT-Dx conversion on a synthetic NBIA tree with every known pitfall, checked voxel by voxel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _synthetic_sources import (
    new_ids,
    write_ct_series,
    write_fused_series,
    write_metadata_csv,
    write_pet_series,
    write_voc_xml,
)

from nnunet_kd.boxes.axial_boxes import axial_boxes_from_label, rasterize_boxes
from nnunet_kd.dataset_conversion.lung_pet_ct_dx import LungPetCtDxOptions, convert
from nnunet_kd.dataset_conversion.lung_pet_ct_dx_annotations import MalformedAnnotation, parse_annotation
from nnunet_kd.errors import InputError
from nnunet_kd.synthetic.chest_phantom import PhantomConfig, make_phantom

SPACING = (8.0, 8.0, 8.0)
ORIGIN = (-150.0, -170.0, -300.0)


def _phantom(seed: int):
    config = PhantomConfig(shape_zyx=(24, 40, 40), spacing_xyz=SPACING, vessels_per_lung=1,
                           tumours_per_case=(1, 1), placement_probabilities=(1.0, 0.0, 0.0))
    return make_phantom(config, rng=seed)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A download with: a patient whose boxes are split over two CT series, PET, fused RGB, a partial thorax,
    a stacked series, a series with a missing slice, an unknown UID, a 'Q' box, a malformed XML, and a
    metadata.csv row of a patient that is not on disk."""
    root = tmp_path_factory.mktemp("lpcd")
    data = root / "manifest-1" / "Lung-PET-CT-Dx"
    notes = root / "Annotation"
    phantom = _phantom(3)
    study = data / "Lung_Dx-A9001" / "04-25-2007-NA-Thorax  Routine-1"
    ids_l = new_ids("Lung_Dx-A9001")
    ids_b = new_ids("Lung_Dx-A9001", ids_l.study_uid, ids_l.frame_uid)
    uids_l = write_ct_series(study / "2.000000-Thorax  L-1", phantom.image, SPACING, ORIGIN, ids_l, 2, "Thorax L")
    uids_b = write_ct_series(study / "3.000000-Thorax  B-2", phantom.image, SPACING, ORIGIN, ids_b, 3, "Thorax B")
    write_pet_series(study / "4.000000-PET-3", (12, 16, 16), new_ids("Lung_Dx-A9001", ids_l.study_uid, ids_l.frame_uid))
    write_fused_series(study / "5.000000-Fused-4", 4, 40, new_ids("Lung_Dx-A9001", ids_l.study_uid, ids_l.frame_uid))
    truth = axial_boxes_from_label(phantom.label, merge_per_slice=True)
    assert len(truth) >= 3
    for i, box in enumerate(truth):  # alternate series, as in the real annotations
        uid = (uids_l if i % 2 == 0 else uids_b)[box.slice_index]
        name = {1: "Q", 2: "g"}.get(i, "A")  # an unknown class, and a lowercase letter that is not the folder's
        rectangle = (box.row_min, box.row_max, box.col_min, box.col_max, name)
        write_voc_xml(notes / "A9001" / f"{uid}.xml", [rectangle], 40, 40)
    write_voc_xml(notes / "A9001" / "1.2.3.4.5.6.7.8.9.xml", [(1, 2, 3, 4, "A")], 40, 40)
    (notes / "A9001" / "1.2.3.4.5.6.7.8.10.xml").write_text("<annotation><object><name>A</name><bndbox><xmin>3")

    partial = phantom.image[:12]  # 12 × 8 mm = 96 mm < 160 mm
    write_ct_series(data / "Lung_Dx-B9002" / "s" / "2.000000-x-1", partial, SPACING, ORIGIN,
                    new_ids("Lung_Dx-B9002"), 2, "partial")
    z_stacked = [ORIGIN[2] + SPACING[2] * (k % 12) for k in range(24)]
    write_ct_series(data / "Lung_Dx-E9003" / "s" / "2.000000-x-1", phantom.image, SPACING, ORIGIN,
                    new_ids("Lung_Dx-E9003"), 2, "stacked", z_positions=z_stacked)
    z_gap = [ORIGIN[2] + SPACING[2] * (k if k < 10 else k + 3) for k in range(24)]
    write_ct_series(data / "Lung_Dx-G9004" / "s" / "2.000000-x-1", phantom.image, SPACING, ORIGIN,
                    new_ids("Lung_Dx-G9004"), 2, "gap", z_positions=z_gap)
    damaged = data / "Lung_Dx-A9005" / "s" / "2.000000-x-1"
    write_ct_series(damaged, phantom.image, SPACING, ORIGIN, new_ids("Lung_Dx-A9005"), 2, "damaged")
    victim = damaged / "1-05.dcm"
    victim.write_bytes(victim.read_bytes()[:-700])  # header intact, pixel data cut short
    write_metadata_csv(root / "manifest-1" / "metadata.csv", [
        {"Series UID": ids_l.series_uid, "Subject ID": "Lung_Dx-A9001", "Modality": "CT"},
        {"Series UID": "1.2.826.0.1.999", "Subject ID": "Lung_Dx-A9999", "Modality": "CT",
         "File Location": "./Lung-PET-CT-Dx/Lung_Dx-A9999/x/y"},
    ])
    return {"root": root, "annotations": notes, "phantom": phantom, "truth": truth, "series_b": ids_b.series_uid,
            "series_l": ids_l.series_uid}


@pytest.fixture(scope="module")
def converted(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "Dataset502_LungPETCTDx"
    options = LungPetCtDxOptions(write_coarse_labels=True, quiet=True)
    report = convert(source["root"], out, source["annotations"], options)
    return out, report


def _rows_by_reason(report) -> dict[str, str]:
    return {row["series_description"]: f"{row['status']}: {row['reason']}" for row in report.rows}


def test_image_geometry_and_values_match_phantom(source, converted):
    out, report = converted
    assert report.kept_cases == ["LungDx_A9001_01"]
    image = sitk.ReadImage(str(out / "imagesTr" / "LungDx_A9001_01_0000.nii.gz"))
    assert image.GetSpacing() == pytest.approx(SPACING)
    assert image.GetOrigin() == pytest.approx(ORIGIN)
    assert image.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), source["phantom"].image)


def test_boxes_from_both_series_projected_onto_chosen_one(source, converted):
    out, report = converted
    boxes = sitk.ReadImage(str(out / "boxesTr" / "LungDx_A9001_01.nii.gz"))
    image = sitk.ReadImage(str(out / "imagesTr" / "LungDx_A9001_01_0000.nii.gz"))
    assert boxes.GetOrigin() == image.GetOrigin() and boxes.GetSpacing() == image.GetSpacing()
    mask = sitk.GetArrayFromImage(boxes)
    assert mask.dtype == np.uint8
    expected = rasterize_boxes(source["truth"], mask.shape)
    np.testing.assert_array_equal(mask, expected)
    assert np.all(mask[source["phantom"].label > 0] == 1)  # boxes cover the tumour
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labelsTr" / "LungDx_A9001_01.nii.gz")))
    np.testing.assert_array_equal(label, mask)
    counts = report.annotation_counts
    assert counts["resolved"] == len(source["truth"])
    assert counts["projected_from_sibling_series"] == len(source["truth"]) // 2
    assert counts["unknown_uid"] == 1 and counts["malformed"] == 1 and counts["unknown_class_boxes"] == 1
    assert counts["class_differs_from_folder_letter"] == 1


def test_exclusion_reasons_in_manifest(converted):
    out, report = converted
    reasons = _rows_by_reason(report)
    assert reasons["PET WB"].startswith("excluded: modality PT")
    assert "secondary capture or RGB" in reasons["Fused PET-CT"]
    assert "partial" in reasons["partial"] and "96.0 mm" in reasons["partial"]
    assert "duplicated slice position" in reasons["stacked"]
    assert "gap of 32.00 mm" in reasons["gap"]
    assert reasons["damaged"].startswith("excluded: pixel data unreadable")
    # L holds ceil(n/2) of the n annotated slices, B the rest: L wins (ties go to the lower series number)
    assert reasons["Thorax L"] == "kept: "
    assert reasons["Thorax B"].startswith("excluded: another series of the same study")
    missing = [row for row in report.rows if row["status"] == "missing"]
    assert [row["patient"] for row in missing] == ["A9999"]
    manifest = json.loads((out / "manifest.json").read_text())
    problems = {Path(p["file"]).name: p["problem"] for p in manifest["summary"]["annotation_problems"]}
    assert "not in the download" in problems["1.2.3.4.5.6.7.8.9.xml"]
    assert "not readable XML" in problems["1.2.3.4.5.6.7.8.10.xml"]
    csv_lines = (out / "manifest.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(manifest["rows"])


def test_dataset_json_and_rerun_skips_finished_cases(source, converted, capsys):
    out, _ = converted
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"} and dataset["labels"] == {"background": 0, "tumor": 1}
    assert dataset["numTraining"] == 1
    image_path = out / "imagesTr" / "LungDx_A9001_01_0000.nii.gz"
    before = image_path.stat().st_mtime_ns
    stale = out / "boxesTr" / ".LungDx_A9001_01.tmp-1a2b3c4d.nii.gz"  # what a killed writer leaves behind
    stale.write_bytes(b"half")
    convert(source["root"], out, source["annotations"], LungPetCtDxOptions(write_coarse_labels=True))
    assert image_path.stat().st_mtime_ns == before
    assert "kept (already converted)" in capsys.readouterr().err
    assert not stale.exists()
    (out / "boxesTr" / "LungDx_A9001_01.nii.gz").unlink()  # an incomplete case is converted again
    convert(source["root"], out, source["annotations"], LungPetCtDxOptions(write_coarse_labels=True))
    assert (out / "boxesTr" / "LungDx_A9001_01.nii.gz").is_file()
    err = capsys.readouterr().err
    assert "LungDx_A9001_01: kept (" in err and "already converted" not in err


def test_drop_unknown_classes_and_test_patient(source, tmp_path):
    report = convert(source["root"], tmp_path / "d", source["annotations"],
                     LungPetCtDxOptions(drop_unknown_classes=True, test_patients=("A9001",), quiet=True))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "d" / "boxesTs" / "LungDx_A9001_01.nii.gz")))
    truth = [b for i, b in enumerate(source["truth"]) if i != 1]  # the 'Q' box is dropped
    np.testing.assert_array_equal(mask, rasterize_boxes(truth, mask.shape))
    assert [r["split"] for r in report.rows if r["status"] == "kept"] == ["test"]


def test_voc_parser(tmp_path):
    path = tmp_path / "x.xml"
    write_voc_xml_path = tmp_path / "y.xml"
    path.write_text("<annotation><size><width>9</width><height>7</height></size><object><name> g </name><bndbox>"
                    "<xmin>5</xmin><ymin>1</ymin><xmax>8</xmax><ymax>3.0</ymax></bndbox></object></annotation>")
    parsed = parse_annotation(path)
    assert (parsed.width, parsed.height) == (9, 7)
    box = parsed.boxes[0]
    assert (box.row_min, box.row_max, box.col_min, box.col_max, box.label) == (1, 3, 5, 8, "g")
    assert box.known_class
    write_voc_xml_path.write_text("<annotation><object><name>A</name></object></annotation>")
    with pytest.raises(MalformedAnnotation):
        parse_annotation(write_voc_xml_path)


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        convert(tmp_path / "nope", tmp_path / "out")


def test_projection_onto_a_series_with_other_origin_and_spacing():
    from nnunet_kd.dataset_conversion.dicom_series import DicomSeries, SliceHeader
    from nnunet_kd.dataset_conversion.lung_pet_ct_dx import Grid, project_box_annotation
    from nnunet_kd.dataset_conversion.lung_pet_ct_dx_annotations import SliceAnnotation, XmlBox

    source = DicomSeries("s", "st", "p", "f", "CT", "1.2.840.10008.5.1.4.1.1.2", "", 2, "", ("AXIAL",), 1,
                         "MONOCHROME2", 100, 100, (1.0, 1.0), (1, 0, 0, 0, 1, 0),
                         [SliceHeader(Path("a.dcm"), "u", (-50.0, -40.0, 30.0))])
    # target: 2 mm pixels, origin shifted, 5 mm slices starting at z = 10 → the slice at z = 30 is index 4
    grid = Grid(origin=np.array([-60.0, -50.0, 10.0]), spacing=np.array([2.0, 2.0, 5.0]), direction=np.eye(3),
                shape_zyx=(10, 60, 60))
    note = SliceAnnotation(Path("u.xml"), "A0001", "u", (XmlBox(row_min=10, row_max=30, col_min=20, col_max=40,
                                                                 label="A"),))
    (box,), clipped = project_box_annotation(note, source, 0, grid, drop_unknown=False)
    assert clipped == 0
    # source pixel (row 10, col 20) is at x = -50 + 20 = -30, y = -40 + 10 = -30 → target col 15, row 10
    assert (box.slice_index, box.row_min, box.row_max, box.col_min, box.col_max) == (4, 10, 20, 15, 25)
    far = Grid(origin=np.array([-60.0, -50.0, 100.0]), spacing=np.array([2.0, 2.0, 5.0]), direction=np.eye(3),
               shape_zyx=(10, 60, 60))
    assert project_box_annotation(note, source, 0, far, drop_unknown=False) == "slice outside the chosen series"

    # xmax = 900 on a 100-column slice: reported, never silently clipped (the box would grow to the slice edge)
    wide = SliceAnnotation(Path("w.xml"), "A0001", "u", (XmlBox(row_min=10, row_max=30, col_min=20, col_max=900,
                                                                label="A"),))
    problem = project_box_annotation(wide, source, 0, grid, drop_unknown=False)
    assert problem == "box xmin 20 xmax 900 ymin 10 ymax 30 lies outside the 100x100 slice (--clip-boxes clips it)"
    (clipped_box,), clipped = project_box_annotation(wide, source, 0, grid, drop_unknown=False, clip=True)
    assert clipped == 1 and (clipped_box.col_min, clipped_box.col_max) == (15, 54)  # source columns 20..99


def test_series_reader_matches_simpleitk_for_flipped_non_square_anisotropic_slices(tmp_path):
    from nnunet_kd.dataset_conversion.dicom_series import iter_dicom_files, read_series_image, scan_series

    hu = np.random.default_rng(0).integers(-1000, 1000, size=(6, 24, 32)).astype(np.int16)
    write_ct_series(tmp_path / "ct", hu, (0.6, 0.8, 2.5), (10.0, 20.0, -30.0), new_ids("P"),
                    orientation=(-1, 0, 0, 0, -1, 0))
    (series,) = scan_series(iter_dicom_files(tmp_path))
    ours = read_series_image(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    reference = reader.Execute()
    assert ours.GetSize() == reference.GetSize() == (32, 24, 6)
    assert ours.GetSpacing() == pytest.approx(reference.GetSpacing())
    assert ours.GetSpacing() == pytest.approx((0.6, 0.8, 2.5))
    assert ours.GetOrigin() == pytest.approx(reference.GetOrigin())
    assert ours.GetDirection() == pytest.approx(reference.GetDirection())
    assert ours.GetDirection() == pytest.approx((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), hu)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(reference))


def test_slice_spacing_checks():
    from nnunet_kd.dataset_conversion.dicom_series import check_slice_spacing

    regular = check_slice_spacing(np.array([10.0, 0.0, 5.0, 15.0]))  # any order
    assert regular.problem is None and regular.step_mm == 5.0 and regular.z_length_mm == 20.0
    assert "irregular" in check_slice_spacing(np.array([0.0, 5.0, 10.0, 16.5, 21.5, 26.5])).problem
    assert "gap of 10.00 mm" in check_slice_spacing(np.array([0.0, 5.0, 10.0, 20.0, 25.0, 30.0])).problem
    assert "duplicated" in check_slice_spacing(np.array([0.0, 5.0, 5.0, 10.0])).problem


def test_regular_grid_of_series_with_missing_slices():
    from nnunet_kd.dataset_conversion.dicom_series import fill_missing_slices, regular_grid_indices

    np.testing.assert_array_equal(regular_grid_indices(np.array([0.0, 5.0, 20.0, 25.0]), 5.0), [0, 1, 4, 5])
    assert regular_grid_indices(np.array([0.0, 5.0, 12.5, 17.5]), 5.0) is None  # off the grid: not just missing
    volume = np.array([[[0]], [[10]], [[40]]], dtype=np.int16)  # slices at grid 0, 1, 4
    filled = fill_missing_slices(volume, np.array([0, 1, 4]), interpolate=True)
    np.testing.assert_array_equal(filled[:, 0, 0], [0, 10, 20, 30, 40])
    nearest = fill_missing_slices(volume, np.array([0, 1, 4]), interpolate=False)
    np.testing.assert_array_equal(nearest[:, 0, 0], [0, 10, 10, 40, 40])


def test_rerun_after_an_annotation_changed_redraws_that_series_box_mask(source, tmp_path, capsys):
    import shutil

    root, notes = tmp_path / "download", tmp_path / "download" / "Annotation"
    shutil.copytree(source["root"], root)
    out = tmp_path / "Dataset502_LungPETCTDx"
    convert(root, out, notes, LungPetCtDxOptions(quiet=True))
    box_file = out / "boxesTr" / "LungDx_A9001_01.nii.gz"
    before = sitk.GetArrayFromImage(sitk.ReadImage(str(box_file)))
    truth = source["truth"][0]
    uid_file = next(f for f in (notes / "A9001").glob("*.xml") if f.read_text().count("<xmin>") == 1
                    and f"<xmin>{truth.col_min}</xmin>" in f.read_text())
    text = uid_file.read_text()  # the annotator widens the first box by one column
    uid_file.write_text(text.replace(f"<xmax>{truth.col_max}</xmax>", f"<xmax>{truth.col_max + 1}</xmax>"))
    capsys.readouterr()
    convert(root, out, notes, LungPetCtDxOptions())
    err = capsys.readouterr().err
    assert "LungDx_A9001_01: kept (" in err and "sources changed since the last run" in err
    after = sitk.GetArrayFromImage(sitk.ReadImage(str(box_file)))
    assert int(after.sum()) > int(before.sum())  # the widened box covers more voxels
    capsys.readouterr()
    convert(root, out, notes, LungPetCtDxOptions())  # nothing changed since: nothing converted again
    assert "kept (already converted)" in capsys.readouterr().err
