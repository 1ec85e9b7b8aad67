"""Sliding-window inference time for one realistic-size volume: compact students vs nnU-Net's PlainConvUNet.

The networks are those of ``bench_students.py``'s CT plan (patch 80x160x160, built through nnU-Net's
``get_network_from_plans`` after the real ``add_student_configuration``), with random weights: the cost of a forward
pass does not depend on the weights. Each one predicts the same volume through nnU-Net's own
``nnUNetPredictor.predict_sliding_window_return_logits`` (Gaussian weighting, tile step 0.5, as
``nnUNetv2_predict``), test-time mirroring off by default (``--mirror`` turns it on: 8 forward passes per window).
Preprocessing and export are not timed: they are the same for every network.

A lower-resolution student (``plain_w0.5_x2``: ``add-student --spacing-factor 2``) predicts the volume at its own
coarser grid (the volume's shape scaled by the spacing ratio) and is timed together with the resampling of its
logits back to the full grid (the configuration's ``resampling_fn_probabilities``, as nnU-Net's export does; the
full-resolution networks need none).

``--onnx NAME...`` also times those networks exported to ONNX (PyTorch's exporter, random weights) and run by ONNX
Runtime inside the same predictor (:mod:`nnunet_kd.deployment.onnx_prediction`), listed as ``NAME (onnxruntime)``.
``--json`` writes the medians, ratios to the first network, parameters and MACs.

Default volume 200x256x352 voxels = a lung-cropped chest CT at MSD-Lung's planned spacing (about 1.24x0.79x0.79 mm:
25 cm cranio-caudal, 20 cm antero-posterior, 28 cm left-right), 48 windows. Networks are timed side by side in one
process, in interleaved rounds (median reported); on CUDA one untimed warm-up round comes first.

    python benchmarks/timing/bench_student_inference.py --device cpu --threads 2 --rounds 1 \
        --networks 3d_fullres plain_w0.5 plain_w0.25 residual_w0.5 student_w0.5_aspp --onnx plain_w0.5
    python benchmarks/timing/bench_student_inference.py --device cuda --rounds 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_students import PLANS, build, with_students
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_kd.students.cost import configuration_cost

DATASET_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "tumour": 1}, "numTraining": 0,
                "file_ending": ".nii.gz"}
DEFAULT_NETWORKS = ["3d_fullres", "student_w1_aspp", "student_w0.5_aspp"]


def predictor_for(plans: dict, configuration: str, device: torch.device, mirror: bool) -> nnUNetPredictor:
    """An nnUNetPredictor around a freshly built network of ``configuration`` (no checkpoint needed)."""
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=device.type == "cuda", device=device, verbose=False,
                                allow_tqdm=False)
    manager = PlansManager(plans)
    predictor.manual_initialization(build(plans, configuration), manager, manager.get_configuration(configuration),
                                    None, DATASET_JSON, "nnUNetTrainer", (0, 1, 2))
    return predictor


def onnx_predictor_for(plans: dict, configuration: str, folder: Path, threads: int,
                       mirror: bool) -> nnUNetPredictor:
    """The same network (random weights) exported to ONNX and run by ONNX Runtime in nnU-Net's predictor (CPU)."""
    import warnings

    from nnunet_kd.deployment.onnx_prediction import OnnxRuntimeNetwork

    manager = PlansManager(plans)
    cm = manager.get_configuration(configuration)
    model_file = folder / f"{configuration}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(build(plans, configuration), (torch.randn(1, 1, *cm.patch_size),), str(model_file),
                          input_names=["image"], dynamo=True, verbose=False)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                allow_tqdm=False)
    predictor.manual_initialization(OnnxRuntimeNetwork(model_file, threads), manager, cm, [{}], DATASET_JSON,
                                    "nnUNetTrainer", (0, 1, 2))
    return predictor


def write_students_table(path: Path, result: dict, device: torch.device) -> None:
    """Rows ``{"student", "params", "macs", "cpu_s", "cpu_ratio", "gpu_s", "gpu_ratio", "dice_mkd",
    "dice_gap_to_full_mkd"}``; an existing file's other-device and Dice columns are kept."""
    ours, other = ("cpu", "gpu") if device.type == "cpu" else ("gpu", "cpu")
    previous = {row["student"]: row for row in json.loads(path.read_text())} if path.is_file() else {}
    rows = []
    for name, entry in result.items():
        row = previous.get(name, {"student": name, f"{other}_s": None, f"{other}_ratio": None, "dice_mkd": None,
                                  "dice_gap_to_full_mkd": None})
        row.update({"student": name, "params": entry["params"], "macs": entry["macs"],
                    f"{ours}_s": round(entry["median_s"], 2), f"{ours}_ratio": round(entry["ratio"], 3)})
        rows.append({key: row.get(key) for key in ("student", "params", "macs", "cpu_s", "cpu_ratio", "gpu_s",
                                                   "gpu_ratio", "dice_mkd", "dice_gap_to_full_mkd")})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


def coarser_shape(volume: list[int], full_spacing: list[float], spacing: list[float]) -> tuple[int, ...]:
    """The volume's shape on a configuration's grid: ``round(size * full_spacing / spacing)`` per axis."""
    return tuple(max(1, round(v * f / s)) for v, f, s in zip(volume, full_spacing, spacing, strict=True))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds (default 1)")
    parser.add_argument("--volume", type=int, nargs=3, default=[200, 256, 352], metavar=("Z", "Y", "X"))
    parser.add_argument("--networks", nargs="+", default=DEFAULT_NETWORKS,
                        help=f"configurations of the CT plan (default: {' '.join(DEFAULT_NETWORKS)})")
    parser.add_argument("--mirror", action="store_true", help="test-time mirroring (nnUNetv2_predict's default)")
    parser.add_argument("--onnx", nargs="*", default=[], metavar="NAME",
                        help="also time these networks through ONNX Runtime (CPU only)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--students-json", type=Path,
                        help="also write the speed-accuracy table's rows here (benchmarks/results/students.json: "
                             "this device's columns filled, the other device's and the Dice columns null)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        plans = with_students(PLANS["ct"], Path(folder))
    predictors = {name: predictor_for(plans, name, device, args.mirror) for name in args.networks}
    onnx_folder = tempfile.TemporaryDirectory()
    for name in args.onnx:
        predictors[f"{name} (onnxruntime)"] = onnx_predictor_for(plans, name, Path(onnx_folder.name), args.threads,
                                                                 args.mirror)
    managers = {name: PlansManager(plans).get_configuration(name.split(" (")[0]) for name in predictors}
    full_spacing = PlansManager(plans).get_configuration("3d_fullres").spacing
    shapes = {name: coarser_shape(args.volume, full_spacing, managers[name].spacing) for name in predictors}
    volumes = {shape: torch.randn((1, *shape)) for shape in set(shapes.values())}
    window_counts = {  # nnU-Net pads a volume smaller than the patch up to the patch first
        name: len(predictor._internal_get_sliding_window_slicers(
            tuple(max(s, p) for s, p in zip(shapes[name], managers[name].patch_size, strict=True))))
        for name, predictor in predictors.items()}
    windows = window_counts[args.networks[0]]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {args.device} ({gpu}), {args.threads} CPU thread(s); volume "
          f"{'x'.join(map(str, args.volume))}, patch 80x160x160, {windows} windows, mirroring "
          f"{'on' if args.mirror else 'off'}, {args.rounds} round(s)", flush=True)
    times: dict[str, list[float]] = {name: [] for name in predictors}
    peak: dict[str, float] = {}
    for round_index in range(args.rounds + (device.type == "cuda")):
        for name, predictor in predictors.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            start = time.perf_counter()
            logits = predictor.predict_sliding_window_return_logits(volumes[shapes[name]])
            if shapes[name] != tuple(args.volume):  # back to the full grid, as nnU-Net's export does
                logits = managers[name].resampling_fn_probabilities(logits.cpu(), tuple(args.volume),
                                                                    managers[name].spacing, full_spacing)
            synchronize(device)
            elapsed = time.perf_counter() - start
            assert tuple(logits.shape) == (2, *args.volume), logits.shape
            del logits
            if device.type == "cuda":
                peak[name] = torch.cuda.max_memory_allocated(device) / 2**20
            if device.type == "cuda" and round_index == 0:
                continue  # warm-up (cuDNN autotuning, allocator)
            times[name].append(elapsed)
            print(f"  round {round_index}: {name} {elapsed:.2f} s", flush=True)
    reference = statistics.median(times[args.networks[0]])
    print(f"\n| network | s per volume (median) | % of {args.networks[0]} | s per window | peak GPU MiB |\n"
          "|---|---:|---:|---:|---:|")
    result = {}
    for name in predictors:
        median = statistics.median(times[name])
        memory = f"{peak[name]:.0f}" if name in peak else "-"
        print(f"| {name} | {median:.2f} | {100 * median / reference:.1f} | {median / window_counts[name]:.3f} | "
              f"{memory} |")
        cost = configuration_cost(plans, name.split(" (")[0], 1, 2)
        result[name] = {"seconds": times[name], "median_s": median, "ratio": median / reference,
                        "windows": window_counts[name],
                        "peak_mib": peak.get(name), "params": cost.parameters, "macs": cost.macs}
    if args.students_json:
        write_students_table(args.students_json, result, device)
    if args.json:
        args.json.write_text(json.dumps({"device": gpu, "volume": args.volume, "mirror": args.mirror,
                                         "threads": args.threads, "torch": torch.__version__, "results": result},
                                        indent=1))


if __name__ == "__main__":
    main()
