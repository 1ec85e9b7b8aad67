"""Compact students vs nnU-Net's planned PlainConvUNet: parameters, MACs and CPU forward time for one patch.

Two plans are built in memory, a realistic CT ``3d_fullres`` plan (6 stages, 32..320 features, strides
1,2,2,2,2,(1,2,2), patch 80x160x160) and a small phantom plan (4 stages, patch 32x64x64). Student configurations are
added with the real ``add_student_configuration`` (width 1.0 with and without ASPP, width 0.5 with ASPP, and the
dual-output student) and every network is built through nnU-Net's ``get_network_from_plans``.

Timing: batch 1, eval mode, deep supervision off, ``torch.no_grad``, float32 on the CPU. All networks of a plan are
timed side by side in one process: each round runs every network once in a fixed order (after one warm-up round),
and the median over rounds is reported, so a load change on the shared machine hits all networks alike.

    python benchmarks/timing/bench_students.py [--repeats 3] [--threads 2] [--plans ct phantom] [--no-timing]
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
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from nnunet_kd.plans import resolved_configuration
from nnunet_kd.students.configuration import add_student_configuration
from nnunet_kd.students.cost import configuration_cost, format_cost_table

REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
STUDENTS = {  # configuration name -> add_student_configuration keywords
    "student_w1_aspp": dict(width_multiplier=1.0, aspp_rates=[1, 2, 3]),
    "student_w1_noaspp": dict(width_multiplier=1.0, aspp_rates=None),
    "student_w0.5_aspp": dict(width_multiplier=0.5, aspp_rates=[1, 2, 3]),
    "student_do_w1_aspp": dict(width_multiplier=1.0, aspp_rates=[1, 2, 3], dual_output=True),
    "plain_w0.5": dict(kind="plain", width_multiplier=0.5),
    "plain_w0.25": dict(kind="plain", width_multiplier=0.25),
    "plain_w0.5_4stages": dict(kind="plain", width_multiplier=0.5, n_stages=4),
    "residual_w0.5": dict(kind="residual", width_multiplier=0.5),
    "plain_w0.5_x2": dict(kind="plain", width_multiplier=0.5, spacing_factor=2.0),  # half resolution
}


#: nnU-Net's default resampling of predicted probabilities back to the image grid (its planner writes these)
RESAMPLING = {"resampling_fn_probabilities": "resample_data_or_seg_to_shape",
              "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                     "force_separate_z": None}}


def plan(n_stages: int, features: list[int], strides: list[list[int]], patch: list[int],
         spacing: list[float], median: list[int]) -> dict:
    """A plans dict with one ``3d_fullres`` configuration as nnU-Net's default planner writes it."""
    return {
        "dataset_name": "Dataset000_Bench", "plans_name": "nnUNetPlans",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "patch_size": patch, "spacing": spacing,
            "median_image_size_in_voxels": median, **RESAMPLING,
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n_stages, "features_per_stage": features, "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * n_stages, "strides": strides, "n_conv_per_stage": [2] * n_stages,
                    "n_conv_per_stage_decoder": [2] * (n_stages - 1), "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                    "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                    "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
                },
                "_kw_requires_import": REQUIRES_IMPORT,
            },
        }},
    }


PLANS = {
    "ct": plan(6, [32, 64, 128, 256, 320, 320], [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
               [80, 160, 160], [1.24, 0.79, 0.79], [200, 256, 352]),
    "phantom": plan(4, [32, 64, 128, 256], [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], [32, 64, 64],
                    [6.0, 5.0, 5.0], [40, 64, 64]),
}


def with_students(plans: dict, folder: Path) -> dict:
    plans_file = folder / "nnUNetPlans.json"
    plans_file.write_text(json.dumps(plans))
    for name, options in STUDENTS.items():
        add_student_configuration(plans_file, name=name, **options)
    return json.loads(plans_file.read_text())


def build(plans: dict, configuration: str) -> torch.nn.Module:
    architecture = resolved_configuration(plans, configuration)["architecture"]
    network = get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                     architecture["_kw_requires_import"], 1, 2, allow_init=True,
                                     deep_supervision=False)
    return network.eval()


def time_side_by_side(plans: dict, configurations: list[str], repeats: int) -> dict[str, list[float]]:
    """Seconds per forward pass, per configuration, interleaved rounds (first round = warm-up, dropped)."""
    patch = resolved_configuration(plans, "3d_fullres")["patch_size"]
    networks = {c: build(plans, c) for c in configurations}
    x = torch.randn(1, 1, *patch)
    times: dict[str, list[float]] = {c: [] for c in configurations}
    with torch.no_grad():
        for round_index in range(repeats + 1):
            for name, network in networks.items():
                start = time.perf_counter()
                network(x)
                elapsed = time.perf_counter() - start
                if round_index > 0:
                    times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--plans", nargs="+", choices=sorted(PLANS), default=["phantom", "ct"])
    parser.add_argument("--no-timing", action="store_true", help="parameters and MACs only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s)")

    for plans_name in args.plans:
        with tempfile.TemporaryDirectory() as folder:
            plans = with_students(PLANS[plans_name], Path(folder))
        configurations = ["3d_fullres", *STUDENTS]
        costs = [configuration_cost(plans, c, 1, 2) for c in configurations]
        print(f"\n## {plans_name} plan, patch {costs[0].patch_size}, 1 input channel, 2 classes (inference cost)")
        print(format_cost_table(costs, reference="3d_fullres"))
        if args.no_timing:
            continue
        timed = [c for c in configurations if c != "student_do_w1_aspp"]  # DO = student_w1_aspp at inference
        times = time_side_by_side(plans, timed, args.repeats)
        reference = statistics.median(times["3d_fullres"])
        fastest = min(times["3d_fullres"])
        print(f"\nCPU forward, {args.repeats} interleaved rounds: median and minimum (the least disturbed round on a "
              "shared machine), % of 3d_fullres, all rounds in s")
        for name in timed:
            median, minimum = statistics.median(times[name]), min(times[name])
            rounds = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"  {name:20s} median {median:7.2f} s ({100 * median / reference:5.1f} %)  "
                  f"min {minimum:7.2f} s ({100 * minimum / fastest:5.1f} %)  [{rounds}]")


if __name__ == "__main__":
    main()
