"""Pseudo-label export: time per case against plain nnU-Net prediction, and pseudo-label Dice per teacher.

Run (nnUNet_raw / nnUNet_preprocessed / nnUNet_results set, trained teachers, a weak phantom dataset whose ground
truth sits in ``referenceTr``)::

    python benchmarks/timing/bench_pseudo_labels.py -w 911 --teacher 901:nnUNetTrainerBoxGuided_test:3d_tiny_box:0 \
        [--plain-teacher 901:SomeTrainer:3d_tiny:0] [-device cpu] [--disable-tta]

For the first teacher it times, in one process each and with the model already loaded:

- baseline: ``nnUNetPredictor.predict_from_files_sequential`` writing segmentations (what ``nnUNetv2_predict
  -npp 0 -nps 0`` does), with the box masks as previous-stage input for a box-guided teacher;
- export: the pseudo-label work per case (the same inference, probabilities back to the original geometry,
  ensemble, box cleanup, provenance, label and image files) without the dataset-level merge and QC.

``--large`` also times the export's extra work (cleanup, provenance, label and soft-label files) on a
300 x 512 x 512 case, where it matters most. Then it exports each teacher into its own dataset (ids 990, 991) and
scores the pseudo-labels against ``referenceTr`` (Dice per case; the exporter never reads that folder).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def time_baseline(teacher, weak: Path, device: str, use_mirroring: bool) -> tuple[float, int]:
    """Seconds per case of nnU-Net's sequential prediction (model loaded beforehand)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(use_mirroring=use_mirroring, device=torch.device(device),
                                perform_everything_on_device=device == "cuda", allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(teacher.folder), tuple(int(f) for f in teacher.folds),
                                                   teacher.spec.checkpoint)
    cases = sorted((weak / "imagesTr").glob("*_0000.nii.gz"))
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        predictor.predict_from_files_sequential(str(weak / "imagesTr"), out, save_probabilities=False,
                                                folder_with_segs_from_prev_stage=str(weak / "boxesTr")
                                                if teacher.box_guided else None)
        return (time.perf_counter() - start) / len(cases), len(cases)


def time_export(teacher, weak: Path, device: str, use_mirroring: bool) -> float:
    """Seconds per case of the export's per-case work (model loaded beforehand, no merge/QC)."""
    from nnunet_kd.pseudo_labels.export import ExportOptions, export_case
    from nnunet_kd.pseudo_labels.predictor import NnunetTeacher
    from nnunet_kd.pseudo_labels.source_cases import read_raw_dataset, weak_cases

    model = NnunetTeacher(teacher, device, use_mirroring)
    dataset = read_raw_dataset(weak)
    cases = weak_cases(dataset, weak / "boxesTr")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        for case in cases:
            export_case(Path(out), case, [model], [1.0], [teacher.name], ExportOptions(), dataset.file_ending)
        return (time.perf_counter() - start) / len(cases)


def time_extra_work_on_a_ct_sized_case() -> dict[str, float]:
    """Seconds of the export's work that nnU-Net's prediction does not do, on a 300 x 512 x 512 case (two lesions,
    spacing 2.5 x 0.7 x 0.7 mm): argmax, box cleanup and provenance; label file; soft-label file."""
    from nnunet_kd.boxes.axial_boxes import axial_box_mask
    from nnunet_kd.pseudo_labels.export import ExportOptions, pseudo_label_case, write_label

    shape, spacing = (300, 512, 512), (2.5, 0.7, 0.7)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    reference = np.zeros(shape, dtype=np.uint8)
    for (z, y, x), radius in (((100, 200, 150), 20.0), ((180, 300, 380), 12.0)):
        reference |= (((zz - z) * spacing[0]) ** 2 + ((yy - y) * spacing[1]) ** 2
                      + ((xx - x) * spacing[2]) ** 2 <= radius**2).astype(np.uint8)
    boxes = axial_box_mask(reference)
    p = np.where(reference > 0, 0.9, 0.05).astype(np.float32)
    p[250:253, 100:104, 100:104] = 0.8  # a stray blob far from the boxes
    probabilities = np.stack([1 - p, p])
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        image = sitk.GetImageFromArray(np.zeros(shape, dtype=np.int16))
        image.SetSpacing(tuple(reversed(spacing)))
        sitk.WriteImage(image, f"{folder}/ct.nii.gz", useCompression=True)
        start = time.perf_counter()
        labels, _ = pseudo_label_case(probabilities, boxes, spacing, ExportOptions())
        times["argmax + cleanup + provenance"] = time.perf_counter() - start
        start = time.perf_counter()
        write_label(labels, Path(f"{folder}/ct.nii.gz"), Path(folder) / "label.nii.gz")
        times["label file (compressed NIfTI)"] = time.perf_counter() - start
        start = time.perf_counter()
        with open(f"{folder}/soft.npz", "wb") as handle:
            np.savez_compressed(handle, probabilities=probabilities.astype(np.float16))
        times["soft labels (optional, float16 .npz)"] = time.perf_counter() - start
    return times


def pseudo_label_dice(spec, weak: Path, output_id: int, device: str, use_mirroring: bool) -> list[float]:
    from nnunet_kd.pseudo_labels import ExportOptions, export_pseudo_labels
    from nnunet_kd.pseudo_labels.export_job import nnunet_model_factory

    folder = export_pseudo_labels([spec], str(weak), output_id=output_id, output_name="BenchPseudo",
                                  options=ExportOptions(qc_sample=0), overwrite=True, progress=False,
                                  model_factory=nnunet_model_factory(device, use_mirroring))
    scores = []
    for reference in sorted((weak / "referenceTr").glob("*.nii.gz")):
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"weak_{reference.name}")))
        scores.append(dice(ours, sitk.GetArrayFromImage(sitk.ReadImage(str(reference)))))
    shutil.rmtree(folder)
    return scores


def main() -> None:
    from nnunet_kd.pseudo_labels.source_cases import locate_raw_dataset
    from nnunet_kd.pseudo_labels.teacher_requests import parse_teacher, resolve_teacher

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--weak", required=True)
    parser.add_argument("--teacher", required=True, help="box-guided teacher spec (timed and scored)")
    parser.add_argument("--plain-teacher", default=None, help="plain (point-guided) teacher spec (scored)")
    parser.add_argument("-device", "--device", default="cuda")
    parser.add_argument("--disable-tta", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", action="store_true", help="also time the extra work on a CT-sized case")
    args = parser.parse_args()
    weak = locate_raw_dataset(args.weak)
    mirroring = not args.disable_tta
    box_spec = parse_teacher(args.teacher)
    teacher = resolve_teacher(box_spec)
    baselines, exports = [], []
    for _ in range(args.repeats):  # alternate, keep the best of each: the machine may be shared
        baseline, n = time_baseline(teacher, weak, args.device, mirroring)
        baselines.append(baseline)
        exports.append(time_export(teacher, weak, args.device, mirroring))
    baseline, export = min(baselines), min(exports)
    print(f"{n} case(s), teacher {teacher.name}, device {args.device}, TTA {'on' if mirroring else 'off'}, "
          f"best of {args.repeats}")
    runs = ", ".join(f"{b:.2f}" for b in baselines)
    print(f"nnU-Net predict_from_files_sequential: {baseline:.2f} s/case (runs {runs})")
    print(f"pseudo-label export (per case):        {export:.2f} s/case (runs {', '.join(f'{e:.2f}' for e in exports)}; "
          f"{100 * (export / baseline - 1):+.1f} %)")
    if args.large:
        for step, seconds in time_extra_work_on_a_ct_sized_case().items():
            print(f"300x512x512 case, {step}: {seconds:.2f} s")
    for label, spec, output_id in (("box-guided", box_spec, 990), ("plain", args.plain_teacher, 991)):
        if spec is None:
            continue
        spec = parse_teacher(spec) if isinstance(spec, str) else spec
        scores = pseudo_label_dice(spec, weak, output_id, args.device, mirroring)
        print(f"{label} teacher {spec.trainer}:{spec.configuration}: pseudo-label Dice vs referenceTr "
              f"{np.mean(scores):.3f} (per case {', '.join(f'{s:.3f}' for s in scores)})")


if __name__ == "__main__":
    main()
