"""Parameters and multiply-accumulate operations (MACs) of the networks that plans configurations build.

MACs are counted with forward hooks on every convolution, transposed convolution and linear layer during one
forward pass of a single patch (batch 1, deep supervision off, eval mode: what inference costs; the dual-output
student's box decoder does not run then). Norms, nonlinearities, pooling and additions are not counted (they are a
few percent at most). The pass runs on PyTorch's ``meta`` device: shapes only, no arithmetic, no memory, so even a
full-size CT patch costs nothing; modules without meta support fall back to the CPU.

Per layer, with ``N`` output (for transposed convolutions: input) elements per sample:
convolution ``N · C_in/groups · prod(kernel)``, transposed convolution ``N_in · C_out/groups · prod(kernel)``,
linear ``N / out_features · in_features · out_features``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd


@dataclass(frozen=True)
class ModelCost:
    """Cost of one configuration's network for one patch."""

    configuration: str
    network_class: str
    parameters: int
    macs: int
    patch_size: tuple[int, ...]


def count_parameters(network: nn.Module, trainable_only: bool = False) -> int:
    """Number of (shared parameters counted once) parameters."""
    return sum(p.numel() for p in network.parameters() if p.requires_grad or not trainable_only)


def _layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    batch = output.shape[0]
    if isinstance(module, _ConvTransposeNd):
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return inputs[0].numel() // batch * per_input
    if isinstance(module, _ConvNd):
        return output.numel() // batch * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output.numel() // batch * module.in_features
    return 0


def count_macs(network: nn.Module, input_shape: Sequence[int]) -> int:
    """MACs of one forward pass per sample for an input of ``input_shape`` ``(B, C, *spatial)``.

    The network runs as it is (mode and device unchanged); use :func:`measure` for the meta-device shortcut.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, inputs, output)

    handles = [m.register_forward_hook(hook) for m in network.modules()
               if isinstance(m, (_ConvNd, nn.Linear))]
    device = next(network.parameters()).device
    try:
        with torch.no_grad():
            network(torch.zeros(tuple(input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total


def measure(build: Any, input_shape: Sequence[int]) -> tuple[int, int]:
    """``(parameters, MACs)`` of the network ``build()`` returns, built and run on the meta device if possible.

    Args:
        build: zero-argument callable returning the network (called inside ``torch.device("meta")``).
        input_shape: ``(B, C, *spatial)``.
    """
    try:
        with torch.device("meta"):
            network = build().eval()
            return count_parameters(network), count_macs(network, input_shape)
    except (NotImplementedError, RuntimeError):
        network = build().eval()
        return count_parameters(network), count_macs(network, input_shape)


def configuration_cost(
    plans: dict[str, Any],
    configuration: str,
    input_channels: int,
    num_classes: int,
    patch_size: Sequence[int] | None = None,
) -> ModelCost:
    """Parameters and MACs of the network nnU-Net builds for ``configuration`` (via ``get_network_from_plans``).

    Args:
        plans: the plans dict.
        configuration: configuration name (``inherits_from`` is resolved as nnU-Net does).
        input_channels, num_classes: network input channels and segmentation heads.
        patch_size: spatial input size; default the configuration's ``patch_size``.
    """
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_kd.errors import ConfigurationError
    from nnunet_kd.plans import resolved_configuration

    resolved = resolved_configuration(plans, configuration)
    architecture = resolved.get("architecture")
    if architecture is None:
        raise ConfigurationError(f"configuration {configuration!r} has no 'architecture' entry (old plans format?)")
    patch = tuple(int(s) for s in (patch_size or resolved["patch_size"]))
    if len(patch) != len(resolved["patch_size"]):
        raise ConfigurationError(
            f"patch {list(patch)} has {len(patch)} axes but configuration {configuration!r} is "
            f"{len(resolved['patch_size'])}D"
        )

    def build() -> nn.Module:
        return get_network_from_plans(architecture["network_class_name"], architecture["arch_kwargs"],
                                      architecture["_kw_requires_import"], input_channels, num_classes,
                                      allow_init=False, deep_supervision=False)

    parameters, macs = measure(build, (1, input_channels, *patch))
    return ModelCost(configuration, architecture["network_class_name"].rsplit(".", 1)[-1], parameters, macs, patch)


def format_cost_table(costs: Iterable[ModelCost], reference: str | None = None) -> str:
    """A plain-text table; with ``reference`` (a configuration name), parameter and MAC ratios to it."""
    costs = list(costs)
    ref = next((c for c in costs if c.configuration == reference), None)
    header = ["configuration", "network", "patch", "parameters", "GMACs"] + (["params %", "MACs %"] if ref else [])
    rows = [header]
    for c in costs:
        row = [c.configuration, c.network_class, "x".join(map(str, c.patch_size)), f"{c.parameters:,}",
               f"{c.macs / 1e9:.1f}"]
        if ref:
            row += [f"{100 * c.parameters / ref.parameters:.1f}", f"{100 * c.macs / ref.macs:.1f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
