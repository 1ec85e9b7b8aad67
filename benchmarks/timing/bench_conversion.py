"""Time the dataset converters on one realistic-size synthetic chest CT (512×512×150 slices).

Run: ``python benchmarks/timing/bench_conversion.py [--slices 150] [--skip-nsclc]`` (prints seconds per case for each
converter, with and without the classical lung crop). The source trees are written first (not timed) in the real
layouts: a Lung-PET-CT-Dx DICOM series plus box XMLs, an MSD ``Task06_Lung`` NIfTI pair, an NSCLC-Radiomics CT
plus RTSTRUCT. Timings include reading the source, building boxes/labels, optional cropping and writing
compressed NIfTI outputs, the manifest and ``dataset.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "unit"))

from _synthetic_sources import new_ids, write_ct_series, write_rtstruct, write_voc_xml  # noqa: E402

SPACING = (0.7, 0.7, 2.0)  # (x, y, z) mm
ORIGIN = (-179.2, -179.2, -300.0)


def chest_volume(slices: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HU volume ``(z, 512, 512)`` (air, fat-rimmed body, two lungs, spine, a tumour) and the tumour label."""
    z, y, x = np.ogrid[:slices, :512, :512]
    zz = (z - slices / 2) * SPACING[2]
    yy, xx = (y - 256) * SPACING[1], (x - 256) * SPACING[0]
    hu = np.full((slices, 512, 512), -1000, np.int16)
    body = (xx / 165.0) ** 2 + (yy / 120.0) ** 2 <= 1
    hu[np.broadcast_to(body, hu.shape)] = -100
    inner = (xx / 155.0) ** 2 + (yy / 110.0) ** 2 <= 1
    hu[np.broadcast_to(inner, hu.shape)] = 40
    for side in (-1, 1):
        lung = ((xx - side * 75) / 60.0) ** 2 + ((yy + 5) / 85.0) ** 2 + (zz / (0.45 * slices * SPACING[2])) ** 2 <= 1
        hu[lung] = -850
    hu[np.broadcast_to(((xx / 18.0) ** 2 + ((yy - 90) / 18.0) ** 2) <= 1, hu.shape)] = 500
    tumour = ((xx + 120) / 20.0) ** 2 + ((yy + 5) / 20.0) ** 2 + (zz / 20.0) ** 2 <= 1  # juxtapleural
    hu[tumour] = 45
    hu += rng.normal(0, 15, hu.shape).astype(np.int16)
    return np.clip(hu, -1024, 3071).astype(np.int16), tumour.astype(np.uint8)


def timed(label: str, function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    seconds = time.perf_counter() - start
    print(f"{label:<48s} {seconds:7.2f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--skip-nsclc", action="store_true", help="skip NSCLC (rt-utils RTSTRUCT writing is slow)")
    args = parser.parse_args()

    import SimpleITK as sitk

    from nnunet_kd.boxes.axial_boxes import axial_boxes_from_label
    from nnunet_kd.dataset_conversion import lung_pet_ct_dx, msd_lung, nsclc_radiomics
    from nnunet_kd.dataset_conversion.lung_crop import LungCropSettings

    hu, tumour = chest_volume(args.slices, np.random.default_rng(0))
    crop = LungCropSettings(method="classical")
    print(f"volume {hu.shape} (z, y, x), spacing {SPACING} mm (x, y, z), {os.cpu_count()} CPU(s)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids = new_ids("Lung_Dx-A0001")
        uids = write_ct_series(root / "lpcd" / "Lung_Dx-A0001" / "study" / "2.000000-CT-1", hu, SPACING, ORIGIN, ids)
        for box in axial_boxes_from_label(tumour, merge_per_slice=True):
            write_voc_xml(root / "lpcd" / "Annotation" / "A0001" / f"{uids[box.slice_index]}.xml",
                          [(box.row_min, box.row_max, box.col_min, box.col_max, "A")], 512, 512)
        for crop_setting, name in ((None, "no crop"), (crop, "classical lung crop")):
            options = lung_pet_ct_dx.LungPetCtDxOptions(write_coarse_labels=True, crop=crop_setting, quiet=True)
            timed(f"Lung-PET-CT-Dx, {name}", lung_pet_ct_dx.convert, root / "lpcd", root / f"out-lpcd-{name}",
                  None, options)

        task = root / "Task06_Lung"
        (task / "imagesTr").mkdir(parents=True)
        (task / "labelsTr").mkdir()
        for array, folder in ((hu, "imagesTr"), (tumour, "labelsTr")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(SPACING)
            image.SetOrigin(ORIGIN)
            sitk.WriteImage(image, str(task / folder / "lung_001.nii.gz"), useCompression=True)
        for crop_setting, name in ((None, "no crop"), (crop, "classical lung crop")):
            options = msd_lung.MsdLungOptions(crop=crop_setting, quiet=True)
            timed(f"MSD Task06_Lung, {name}", msd_lung.convert, task, root / f"out-msd-{name}", options)

        if not args.skip_nsclc:
            ct_folder = root / "nsclc" / "LUNG1-001" / "study" / "0.000000-NA-1"
            write_ct_series(ct_folder, hu, SPACING, ORIGIN, new_ids("LUNG1-001"), 0, "")
            write_rtstruct(ct_folder, root / "nsclc" / "LUNG1-001" / "study" / "3.000000-NA-2" / "1-1.dcm",
                           {"GTV-1": tumour})
            options = nsclc_radiomics.NsclcOptions(quiet=True)
            timed("NSCLC-Radiomics (rt-utils), no crop", nsclc_radiomics.convert, root / "nsclc", root / "out-nsclc",
                  options)


if __name__ == "__main__":
    main()
