"""Where a student's sliding-window time goes on the CPU: wall time per kind of layer inside nnU-Net's sliding window.

Each network of ``bench_students.py``'s CT plan (random weights, built through ``get_network_from_plans``) predicts
the same small volume (default 80x240x240: four windows of 80x160x160 at tile step 0.5) through nnU-Net's own
``nnUNetPredictor.predict_sliding_window_return_logits`` (Gaussian weighting, no mirroring, as
``bench_student_inference.py``), after one untimed window. Forward hooks time every leaf layer, grouped into: the first
convolution (one input channel, at full resolution), the other convolutions, transposed convolutions, instance
norm, LeakyReLU; "rest of the network" is the network's forward time minus its layers (skip concatenations, the
decoder's glue), "outside the network" the sliding window's time minus the network's (window copies, nnU-Net's
Gaussian-weighted accumulation of the logits in float16, the final division). Each as seconds per window and as a
share of the network's total; the last lines compare every group with the first network's. Groups whose time
shrinks more slowly than the MACs explain why a narrower network's time falls more slowly than its cost.

    python benchmarks/timing/profile_student_window.py --threads 2 --networks 3d_fullres plain_w0.5 plain_w0.25
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from bench_student_inference import predictor_for
from bench_students import PLANS, with_students
from torch import nn

from nnunet_kd.students.cost import configuration_cost

GROUPS = ["first convolution", "convolutions", "transposed convolutions", "instance norm", "LeakyReLU",
          "rest of the network", "outside the network"]


def layer_group(module: nn.Module) -> str | None:
    """The group a leaf layer's time counts in, or None for layers not timed on their own."""
    if isinstance(module, nn.Conv3d):
        return "first convolution" if module.in_channels == 1 else "convolutions"
    if isinstance(module, nn.ConvTranspose3d):
        return "transposed convolutions"
    if isinstance(module, nn.InstanceNorm3d):
        return "instance norm"
    if isinstance(module, nn.LeakyReLU):
        return "LeakyReLU"
    return None


class LayerTimer:
    """Forward hooks that add each timed layer's wall time, and the whole network's, to ``seconds``."""

    def __init__(self, network: nn.Module):
        self.seconds: dict[str, float] = defaultdict(float)
        self._starts: dict[int, float] = {}
        for module in network.modules():
            group = layer_group(module)
            if group is not None:
                self._hook(module, group)
        self._hook(network, "network")

    def _hook(self, module: nn.Module, group: str) -> None:
        def start(_module, _inputs):
            self._starts[id(module)] = time.perf_counter()

        def stop(_module, _inputs, _output):
            self.seconds[group] += time.perf_counter() - self._starts.pop(id(module))

        module.register_forward_pre_hook(start)
        module.register_forward_hook(stop)


def profile_network(plans: dict, configuration: str, volume: list[int]) -> tuple[dict[str, float], int]:
    """Seconds per group for one sliding-window prediction of ``volume``, and its number of windows."""
    predictor = predictor_for(plans, configuration, torch.device("cpu"), mirror=False)
    data = torch.randn(1, *volume)
    windows = len(predictor._internal_get_sliding_window_slicers(data.shape[1:]))
    with torch.no_grad():
        patch = predictor.configuration_manager.patch_size
        predictor.predict_sliding_window_return_logits(torch.randn(1, *patch))  # warm-up (one window), not timed
        timer = LayerTimer(predictor.network)
        start = time.perf_counter()
        predictor.predict_sliding_window_return_logits(data)
        total = time.perf_counter() - start
    seconds = dict(timer.seconds)
    network = seconds.pop("network")
    seconds["rest of the network"] = network - sum(seconds.values())
    seconds["outside the network"] = total - network
    return seconds, windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--volume", type=int, nargs=3, default=[80, 240, 240], metavar=("Z", "Y", "X"))
    parser.add_argument("--networks", nargs="+", default=["3d_fullres", "plain_w0.5", "plain_w0.25"])
    parser.add_argument("--json", type=Path, help="also write the seconds per window and group here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"volume {args.volume}")
    with tempfile.TemporaryDirectory() as folder:
        plans = with_students(PLANS["ct"], Path(folder))
    results = {}
    for name in args.networks:
        seconds, windows = profile_network(plans, name, args.volume)
        per_window = {group: seconds.get(group, 0.0) / windows for group in GROUPS}
        total = sum(per_window.values())
        gmacs = configuration_cost(plans, name, 1, 2).macs / 1e9
        results[name] = {"windows": windows, "gmacs_per_window": round(gmacs, 1), "s_per_window": round(total, 3),
                         "groups_s_per_window": {g: round(s, 3) for g, s in per_window.items()}}
        print(f"\n## {name}: {gmacs:.1f} GMACs per window, {windows} windows, {total:.2f} s per window")
        for group, value in per_window.items():
            print(f"  {group:24s} {value:7.3f} s  {100 * value / total:5.1f} %")
    first, reference = args.networks[0], results[args.networks[0]]
    print(f"\nEach group's time as a share of the same group in {first}:")
    for name in args.networks[1:]:
        row = results[name]
        shares = [f"{group} {100 * row['groups_s_per_window'][group] / reference['groups_s_per_window'][group]:.0f} %"
                  for group in GROUPS if reference["groups_s_per_window"][group] > 0.005]
        print(f"  {name}: MACs {100 * row['gmacs_per_window'] / reference['gmacs_per_window']:.1f} %, time "
              f"{100 * row['s_per_window'] / reference['s_per_window']:.1f} %; " + ", ".join(shares))
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "volume": args.volume,
                                         "machine": platform.processor() or platform.machine(),
                                         "networks": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
