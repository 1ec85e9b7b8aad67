"""Does multi-scale distillation survive ``torch.compile``? (GPU check; nnU-Net compiles by default on CUDA.)

Builds the phantom plan's student and one same-size frozen teacher (as ``bench_kd_iteration.py``), attaches the
feature hooks of ``nnUNetTrainerMKD`` (encoder stages 0-2) and computes one training step's loss and gradients:

- ``eager``: no compilation (what the distillation trainers do today);
- ``compile after hooks``: hooks registered, then ``torch.compile(student)`` (the order nnunet_kd recommends);
- ``hooks after compile``: ``torch.compile(student)`` first, hooks registered on the wrapped module afterwards, but
  before the first call (the order nnU-Net's ``initialize`` would impose if the trainer allowed compilation).

For each it reports Seg, Mid and KL, the largest gradient difference to eager (same weights, same batch, float32,
TF32 off), whether the hooks saw the features, and the median step time over ``--steps`` steps under autocast.

    python benchmarks/gpu/check_compile_hooks.py --device cuda [--steps 20] [--plan phantom]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "timing"))  # the iteration benchmark's builders
from bench_kd_iteration import PLANS, deep_supervision_weights, example_targets, frozen_teacher, network

from nnunet_kd.distillation.objective import DistillationObjective, KDConfig

STAGES = ("encoder.stages.0", "encoder.stages.1", "encoder.stages.2")


def run_mode(mode: str, student0: torch.nn.Module, teacher_net: torch.nn.Module, plan: str, device: torch.device,
             steps: int) -> dict:
    patch, _, _, size = PLANS[plan]
    weights = deep_supervision_weights(plan)
    student = copy.deepcopy(student0)
    objective = DistillationObjective([frozen_teacher(plan, teacher_net)], KDConfig(feature_stages=STAGES),
                                      weights).to(device)
    data = torch.randn((size, 1, *patch), generator=torch.Generator().manual_seed(0)).to(device)
    targets = example_targets(plan, device)
    model = student
    if mode == "hooks after compile":
        model = torch.compile(student)
    objective.prepare(model, data[:1], targets[0][:1])
    if mode == "compile after hooks":
        model = torch.compile(student)

    def step(autocast: bool) -> dict:
        student.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=autocast and device.type == "cuda"):
            teacher_targets = objective.teach(data, targets)
            output = model(data)
            seg = sum(torch.nn.functional.cross_entropy(o.float(), t[:, 0].long()) * w
                      for o, t, w in zip(output, targets, weights, strict=True))
            losses = objective(list(output), targets, seg, teacher_targets)
        losses["loss"].backward()
        return losses

    losses = step(autocast=False)  # float32 step, compared with eager
    gradients = {n: p.grad.detach().clone() for n, p in student.named_parameters() if p.grad is not None}
    times = []
    for _ in range(steps):
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        start = time.perf_counter()
        step(autocast=True)
        torch.cuda.synchronize(device) if device.type == "cuda" else None
        times.append(time.perf_counter() - start)
    return {"seg": float(losses["seg"]), "mid": float(losses["mid"]), "kl": float(losses["kl"]),
            "gradients": gradients, "median_s": statistics.median(times[steps // 2:]) if steps else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--plan", choices=sorted(PLANS), default="phantom")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    student0 = network(args.plan).to(device)
    teacher_net = network(args.plan).to(device).eval().requires_grad_(False)
    print(f"torch {torch.__version__}, {device}, plan {args.plan}, stages {', '.join(STAGES)}")
    reference = None
    print("| mode | Seg | Mid | KL | max gradient difference to eager | median s/step (autocast) | result |\n"
          "|---|---:|---:|---:|---:|---:|---|")
    for mode in ("eager", "compile after hooks", "hooks after compile"):
        torch._dynamo.reset()
        try:
            result = run_mode(mode, student0, teacher_net, args.plan, device, args.steps)
        except Exception as error:  # report the failure of this mode and go on with the next
            traceback.print_exc()
            print(f"| {mode} | - | - | - | - | - | fails: {type(error).__name__}: {str(error)[:120]} |")
            continue
        if reference is None:
            reference = result
        # relative to the largest reference gradient: conv biases before InstanceNorm have a mathematically zero
        # gradient, so a per-parameter relative difference would compare rounding noise with rounding noise
        scale = max(g.abs().max().item() for g in reference["gradients"].values())
        diff = max((result["gradients"][n] - g).abs().max().item() for n, g in reference["gradients"].items()) / scale
        same = abs(result["mid"] - reference["mid"]) <= 1e-4 * max(1.0, abs(reference["mid"])) and diff < 1e-3
        print(f"| {mode} | {result['seg']:.5f} | {result['mid']:.5f} | {result['kl']:.5f} | {diff:.1e} (relative) | "
              f"{result['median_s']:.4f} | {'matches eager' if same else 'DIFFERS from eager'} |", flush=True)


if __name__ == "__main__":
    main()
