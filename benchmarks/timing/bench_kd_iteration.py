"""Time per training iteration: distillation (KD / MKD, 1 or 2 same-size teachers) vs nnU-Net's plain step.

The plain step is nnU-Net's: student forward, ``DC_and_CE_loss`` under ``DeepSupervisionWrapper`` with nnU-Net's
weights, backward, gradient clipping at 12, SGD step. The distillation steps add exactly what
``nnUNetTrainerDistillationBase.train_step`` adds: the frozen teachers' forward passes on the same batch and
:class:`~nnunet_kd.distillation.objective.DistillationObjective` (KL on every deep-supervision output, features through hooks,
adaptive teacher weights). Data loading is excluded (it is the same for both). Variants are interleaved round by
round so that machine noise hits all of them alike; medians are reported. Peak memory: each variant once more in a
fresh process (on the CPU the step's own peak from ``torch.profiler``'s allocation records; on CUDA
``torch.cuda.max_memory_allocated``).

    python benchmarks/timing/bench_kd_iteration.py --plan phantom --rounds 10
    python benchmarks/timing/bench_kd_iteration.py --plan ct --rounds 10 --device cuda
    python benchmarks/timing/bench_kd_iteration.py --plan ct --device cuda --compile --no-memory --variants "KD 1 teacher"
    python benchmarks/timing/bench_kd_iteration.py --plan phantom --rounds 3 --no-memory --count-ops

``--compile`` compiles students and teachers after the feature hooks are attached, as the distillation trainers do
on CUDA (nnU-Net's own trainer compiles by default there); its rows are then ratios to a compiled plain step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from torch import nn

PLANS = {  # (patch, features, strides, batch size)
    "phantom": ((40, 64, 64), (32, 64, 128, 256), ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)), 2),
    "ct": ((80, 160, 160), (32, 64, 128, 256, 320, 320),
           ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)), 2),
}
VARIANTS = ("nnUNetTrainer", "KD 1 teacher", "MKD 1 teacher", "KD 2 teachers", "MKD 2 teachers",
            "KD 1 box-guided teacher", "KD 1 box-guided teacher, boxes in the step",
            "KD 1 teacher, teacher after the student", "teacher forward")
# "KD 1 box-guided teacher": the teacher takes CT + the axial box mask of the batch's label. The distillation trainers
# compute that mask in nnU-Net's data-augmentation workers (excluded here like all data loading) and hand it to the
# step; "KD 1 box-guided teacher, boxes in the step" derives it inside the step instead (host connected components
# and a device-to-host copy of the label: how the trainers did it before).
# "KD 1 teacher, teacher after the student" runs the teacher between the student's forward and backward passes (how
# the trainers did it before version 0.2), so that its activations come on top of the student's saved ones.
# "teacher forward" times one frozen teacher's forward pass alone (no_grad, autocast on CUDA): the part of the KD step
# that no implementation can avoid. 1 + its ratio is the lowest ratio a 1-teacher KD step can reach.


def network(plan: str, input_channels: int = 1) -> PlainConvUNet:
    _, features, strides, _ = PLANS[plan]
    n = len(features)
    return PlainConvUNet(input_channels, n, list(features), nn.Conv3d, 3, [list(s) for s in strides], 2, 2, 2, True,
                         nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, nn.LeakyReLU,
                         {"inplace": True}, deep_supervision=True)


def deep_supervision_weights(plan: str) -> list[float]:
    """nnU-Net's: 1/2^i per output (highest resolution first), 0 for the lowest, normalised to sum 1."""
    weights = [1 / 2**i for i in range(len(PLANS[plan][1]) - 1)]
    weights[-1] = 0
    return [w / sum(weights) for w in weights]


def example_targets(plan: str, device: torch.device) -> list[torch.Tensor]:
    """A box-shaped tumour label ``(batch, 1, *patch)`` at every deep-supervision scale, highest resolution first."""
    patch, _, strides, batch = PLANS[plan]
    label = torch.zeros((batch, 1, *patch), device=device)
    label[:, :, 10:20, 20:40, 20:40] = 1
    targets = []
    for stride in strides[1:]:
        targets.append(label)
        label = label[:, :, :: stride[0], :: stride[1], :: stride[2]]
    return targets


def frozen_teacher(plan: str, teacher: nn.Module, label: str = "t0", needs_boxes: bool = False):
    """``teacher`` as the distillation trainers hold it (eval, no gradients, one fold, no normalisation change)."""
    from nnunet_kd.distillation.ct_normalization import NormalizationConversion
    from nnunet_kd.distillation.frozen_teachers import FrozenTeacher
    from nnunet_kd.distillation.spec import TeacherSpec

    return FrozenTeacher(TeacherSpec("1", "T", "c"), label, [teacher.eval().requires_grad_(False)], None, (0,),
                         needs_boxes, 0, NormalizationConversion(), [list(s) for s in PLANS[plan][2]])


def build(plan: str, variant: str, device: torch.device, compile_student: bool = False):
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from nnunet_kd.distillation.objective import DistillationObjective, KDConfig
    from nnunet_kd.network_wrappers import compile_keeping_hooks

    patch, _, _, batch = PLANS[plan]
    student = network(plan).to(device)
    weights = deep_supervision_weights(plan)
    loss = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False}, {}, 1, 1,
                                                 dice_class=MemoryEfficientSoftDiceLoss), weights)
    optimizer = torch.optim.SGD(student.parameters(), 1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    objective = None
    if variant == "teacher forward":
        teacher = network(plan).to(device).eval().requires_grad_(False)
        teacher = torch.compile(teacher) if compile_student else teacher
        del student
        x = torch.randn((batch, 1, *patch), device=device)

        @torch.no_grad()
        def forward_only() -> None:
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                teacher(x)

        return forward_only
    if variant != "nnUNetTrainer":
        count = 2 if "2 teachers" in variant else 1
        boxes = "box-guided" in variant
        teachers = [frozen_teacher(plan, network(plan, 1 + boxes).to(device), f"t{j}", boxes) for j in range(count)]
        stages = ("encoder.stages.0", "encoder.stages.1", "encoder.stages.2") if variant.startswith("MKD") else ()
        objective = DistillationObjective(teachers, KDConfig(feature_stages=stages), weights).to(device)
        data = torch.zeros((1, 1, *patch), device=device)
        objective.prepare(student, data, torch.zeros((1, 1, *patch), device=device))
        if list(objective.parameters()):
            optimizer.add_param_group({"params": list(objective.parameters())})
    if compile_student:  # after the feature hooks, as the distillation trainers do on CUDA (teachers too)
        student = compile_keeping_hooks(student)
        if objective is not None:
            objective.compile_teachers()
    data = torch.randn((batch, 1, *patch), device=device)
    targets = example_targets(plan, device)
    box_mask = None  # computed by the data-augmentation workers in the trainers: handed to the step
    if "box-guided" in variant and "in the step" not in variant:
        from nnunet_kd.boxes.channel import box_channel_of_labels

        box_mask = box_channel_of_labels(targets[0], 0)

    teacher_first = "teacher after the student" not in variant

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            teaching = objective.teach(data, targets, box_mask) if objective is not None and teacher_first else None
            output = student(data)
            seg = loss(output, targets)
            if objective is not None and not teacher_first:  # the order of the trainers before version 0.2
                teaching = objective.teach(data, targets, box_mask)
            total = objective(list(output), targets, seg, teaching)["loss"] if objective is not None else seg
        total.backward()
        parameters = list(student.parameters()) + (list(objective.parameters()) if objective is not None else [])
        torch.nn.utils.clip_grad_norm_(parameters, 12)
        optimizer.step()

    return step


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory(plan: str, variant: str, device: str) -> float:
    """Peak memory (MiB) of one variant in a fresh process: on CUDA ``torch.cuda.max_memory_allocated`` over two steps
    (weights and optimizer state included), on the CPU :func:`step_peak_mib` of the second step."""
    code = (f"import sys; sys.argv=['x']; import torch; from bench_kd_iteration import build, step_peak_mib;"
            f"d=torch.device('{device}'); torch.backends.cudnn.benchmark=d.type=='cuda';"
            f"s=build('{plan}', '{variant}', d); s();"
            f"print(step_peak_mib(s) if d.type=='cpu' else (s(), torch.cuda.max_memory_allocated()/2**20)[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=__file__.rsplit("/", 1)[0])
    return float(out.stdout.strip().splitlines()[-1])


def step_peak_mib(step) -> float:
    """CPU memory that one step holds at its peak beyond what was allocated before it (MiB): the running sum of the
    allocations and frees that ``torch.profiler`` records, in time order. The process's ``ru_maxrss`` cannot tell
    the variants apart (its peak comes from loading the libraries)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def round_ratio_quartiles(times: list[float], base_times: list[float]) -> list[float]:
    """Quartiles (25, 50, 75 %) of the per-round ratios ``times[r] / base_times[r]``: the spread of the paired
    comparison, which shows how far one run's ratio can be trusted on a noisy machine."""
    ratios = [t / b for t, b in zip(times, base_times, strict=True)]
    return statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3


def operator_calls(step, steps: int = 3) -> float:
    """ATen operator calls per step (``torch.profiler``, nested calls included): on a GPU each is roughly one kernel
    launch from the host, so the difference between variants is the host-side work the distillation adds."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", choices=sorted(PLANS), default="phantom")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile students and teachers (nnU-Net compiles by default on CUDA)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--count-ops", action="store_true",
                        help="also count ATen operator calls per step (a proxy of kernel launches)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as nnUNetv2_train sets it
    torch.manual_seed(0)
    variants = [v for v in VARIANTS if v in args.variants or v == "nnUNetTrainer"]
    steps = {v: build(args.plan, v, device, args.compile) for v in variants}
    for step in steps.values():  # warm-up (compilation: forward, then backward graphs)
        for _ in range(2 if args.compile else 1):
            step()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant, step in steps.items():
            times[variant].append(timed(step, device))
    base = statistics.median(times["nnUNetTrainer"])
    result = {}
    print(f"plan {args.plan}, patch {PLANS[args.plan][0]}, batch {PLANS[args.plan][3]}, device {args.device}, "
          f"{args.rounds} interleaved rounds, students {'compiled' if args.compile else 'eager'}")
    print("| variant | median s/iteration | ratio | per-round ratio, quartiles | peak memory MiB | memory ratio |\n"
          "|---|---:|---:|---|---:|---:|")
    memory = {v: (None if args.no_memory or args.compile else peak_memory(args.plan, v, args.device))
              for v in variants}
    for variant in variants:
        median = statistics.median(times[variant])
        spread = round_ratio_quartiles(times[variant], times["nnUNetTrainer"])
        mem = memory[variant]
        mem_cells = f"{mem:.0f} | {mem / memory['nnUNetTrainer']:.2f}" if mem else "- | -"
        print(f"| {variant} | {median:.3f} | {median / base:.2f} | {spread[0]:.2f}–{spread[2]:.2f} | {mem_cells} |")
        result[variant] = {"median_s": median, "ratio": median / base, "round_ratio_quartiles": spread,
                           "peak_mib": mem}
    if args.count_ops:
        print("| variant | ATen calls per step | more than nnU-Net's step |\n|---|---:|---:|")
        calls = {variant: operator_calls(step) for variant, step in steps.items()}
        for variant in variants:
            print(f"| {variant} | {calls[variant]:.0f} | {calls[variant] - calls['nnUNetTrainer']:+.0f} |")
            result[variant]["aten_calls"] = calls[variant]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
