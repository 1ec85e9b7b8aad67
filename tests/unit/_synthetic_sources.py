"""Write small synthetic source trees in the real download layouts (DICOM with pydicom 3, RTSTRUCT, VOC XML).

Conventions as in TCIA data: axial HFS slices (``ImageOrientationPatient`` 1\\0\\0\\0\\1\\0), instance 1 is the most
superior slice (highest z), so file order is the reverse of the array order; pixels are ``HU + 1024`` stored as
uint16 with ``RescaleIntercept`` -1024. Arrays are ``(z, y, x)`` with z ascending.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)


@dataclass(frozen=True)
class SeriesIds:
    """UIDs shared by the slices of one written series."""

    patient_id: str
    study_uid: str
    series_uid: str
    frame_uid: str


def new_ids(patient_id: str, study_uid: str | None = None, frame_uid: str | None = None) -> SeriesIds:
    return SeriesIds(patient_id, study_uid or generate_uid(), generate_uid(), frame_uid or generate_uid())


def _base_dataset(ids: SeriesIds, sop_class: str, modality: str, series_number: int, description: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientID = ids.patient_id
    ds.PatientName = ids.patient_id
    ds.StudyInstanceUID = ids.study_uid
    ds.SeriesInstanceUID = ids.series_uid
    ds.FrameOfReferenceUID = ids.frame_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.StudyDate = "20070425"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    return ds


def write_ct_series(
    folder: str | Path,
    hu_zyx: np.ndarray,
    spacing_xyz: Sequence[float],
    origin_xyz: Sequence[float],
    ids: SeriesIds,
    series_number: int = 2,
    description: str = "5mm",
    z_positions: Sequence[float] | None = None,
    modality: str = "CT",
    sop_class: str = CTImageStorage,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
) -> list[str]:
    """Write one slice file per z index; returns SOPInstanceUIDs in array (ascending z) order.

    ``z_positions`` overrides the z of each array slice (to write stacked scans or missing slices).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu_zyx = np.asarray(hu_zyx)
    n = hu_zyx.shape[0]
    if z_positions is None:
        z_positions = [origin_xyz[2] + k * spacing_xyz[2] for k in range(n)]
    uids = [generate_uid() for _ in range(n)]
    order = sorted(range(n), key=lambda k: -z_positions[k])  # instance 1 = most superior
    for instance, k in enumerate(order, start=1):
        ds = _base_dataset(ids, sop_class, modality, series_number, description)
        ds.file_meta.MediaStorageSOPInstanceUID = uids[k]
        ds.SOPInstanceUID = uids[k]
        ds.InstanceNumber = instance
        ds.AcquisitionNumber = 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.ImagePositionPatient = [float(origin_xyz[0]), float(origin_xyz[1]), float(z_positions[k])]
        ds.PixelSpacing = [float(spacing_xyz[1]), float(spacing_xyz[0])]
        ds.SliceThickness = float(spacing_xyz[2])
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.set_pixel_data((hu_zyx[k].astype(np.int32) + 1024).astype(np.uint16), "MONOCHROME2", 16,
                          generate_instance_uid=False)
        ds.save_as(folder / f"1-{instance:02d}.dcm", enforce_file_format=True)
    return uids


def write_pet_series(folder: str | Path, shape_zyx: tuple[int, int, int], ids: SeriesIds) -> list[str]:
    """A PET series (Modality PT) of random counts."""
    values = np.random.default_rng(0).integers(0, 3000, size=shape_zyx)
    return write_ct_series(folder, values - 1024, (20.0, 20.0, 10.0), (-160.0, -160.0, 0.0), ids, series_number=4,
                           description="PET WB", modality="PT", sop_class=PositronEmissionTomographyImageStorage)


def write_fused_series(folder: str | Path, num_slices: int, size: int, ids: SeriesIds) -> None:
    """A fused PET/CT secondary capture: RGB slices."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(num_slices):
        ds = _base_dataset(ids, SecondaryCaptureImageStorage, "CT", 5, "Fused PET-CT")
        uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(10 * k)]
        ds.PixelSpacing = [1.0, 1.0]
        ds.set_pixel_data(np.full((size, size, 3), 60 * (k % 4), np.uint8), "RGB", 8, generate_instance_uid=False)
        ds.save_as(folder / f"1-{k + 1:02d}.dcm", enforce_file_format=True)


def write_voc_xml(path: str | Path, boxes: Sequence[tuple[int, int, int, int, str]], width: int, height: int) -> None:
    """LabelImg/PASCAL-VOC file; ``boxes`` are ``(row_min, row_max, col_min, col_max, name)`` (0-based, inclusive)."""
    objects = "".join(
        f"  <object>\n    <name>{name}</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
        f"    <Difficult>0</Difficult>\n    <bndbox>\n      <xmin>{c0}</xmin>\n      <ymin>{r0}</ymin>\n"
        f"      <xmax>{c1}</xmax>\n      <ymax>{r1}</ymax>\n    </bndbox>\n  </object>\n"
        for r0, r1, c0, c1, name in boxes
    )
    text = (
        '<annotation verified="no">\n  <folder>Unknow</folder>\n  <filename>Unknow</filename>\n'
        "  <source>Unknow<database>Unknown</database>\n  </source>\n"
        f"  <size>\n    <width>{width}</width>\n    <height>{height}</height>\n    <depth>1</depth>\n  </size>\n"
        f"  <segmented>0</segmented>\n{objects}</annotation>\n"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


METADATA_COLUMNS = (
    "Series UID", "Collection", "3rd Party Analysis", "Data Description URI", "Subject ID", "Study UID",
    "Study Description", "Study Date", "Series Description", "Manufacturer", "Modality", "SOP Class Name",
    "SOP Class UID", "Number of Images", "File Size", "File Location", "Download Timestamp",
)


def write_metadata_csv(path: str | Path, rows: Sequence[dict[str, str]]) -> None:
    """An NBIA ``metadata.csv`` with the real columns (missing values empty)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in METADATA_COLUMNS})


def write_rtstruct(ct_folder: str | Path, path: str | Path, rois: dict[str, np.ndarray]) -> None:
    """RTSTRUCT referencing the CT in ``ct_folder`` (rt-utils); ``rois`` maps names to ``(z, y, x)`` masks."""
    from rt_utils import RTStructBuilder

    rt = RTStructBuilder.create_new(dicom_series_path=str(ct_folder))
    for index, (name, mask) in enumerate(rois.items()):
        rt.add_roi(mask=np.transpose(np.asarray(mask) > 0, (1, 2, 0)), name=name,
                   color=[255, 40 * index % 256, 0])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rt.save(str(path))


def nnunet_case_checks(dataset_folder: str | Path) -> list[str]:
    """Run nnU-Net's own per-case integrity checks in-process (what ``verify_dataset_integrity`` runs in a pool).

    Returns the training cases checked; raises ``AssertionError`` naming the first case that fails.
    """
    from nnunetv2.experiment_planning.verify_dataset_integrity import check_cases, verify_labels
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    folder = Path(dataset_folder)
    cases = sorted(p.name[: -len(".nii.gz")] for p in (folder / "labelsTr").glob("*.nii.gz"))
    for case in cases:
        images = [str(folder / "imagesTr" / f"{case}_0000.nii.gz")]
        label = str(folder / "labelsTr" / f"{case}.nii.gz")
        assert check_cases(images, label, 1, SimpleITKIO), f"nnU-Net check_cases failed for {case}"
        assert verify_labels(label, SimpleITKIO, [0, 1]), f"nnU-Net verify_labels failed for {case}"
    return cases
