"""Capture intermediate features of a network with forward hooks on named submodules.

Names are those of ``dict(network.named_modules())`` on the bare network, e.g. ``encoder.stages.0`` or
``decoder.stages.3`` for dynamic-network-architectures U-Nets. ``torch.compile``'s wrapper (``_orig_mod``) and
(Distributed)DataParallel's ``.module`` are unwrapped first, so the same names work for a wrapped student; with
``torch.compile`` register the hooks first and compile with
:func:`~nnunet_kd.network_wrappers.compile_keeping_hooks`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.network_wrappers import unwrap_network

_STAGE_NAME = re.compile(r"(^|\.)stages\.\d+$")


def stage_level_names(network: nn.Module) -> list[str]:
    """Names ending in ``stages.<i>`` (DNA encoders/decoders); if there are none (e.g. nnU-Net's Primus), the
    modules two levels deep and the members of every ``ModuleList``/``Sequential`` among them (``eva.blocks.3``)."""
    named = [(name, module) for name, module in unwrap_network(network).named_modules() if name]
    stages = [name for name, _ in named if _STAGE_NAME.search(name)]
    if stages:
        return stages
    shallow = {name: module for name, module in named if name.count(".") <= 1}
    names = []
    for name, module in shallow.items():
        names.append(name)
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            names.extend(f"{name}.{child}" for child, _ in module.named_children())
    return names


def feature_map(output: Any, input_spatial: Sequence[int]) -> Tensor:
    """A hooked module's output as a feature map ``(B, C, *spatial)``.

    - a tensor with ``2 + len(input_spatial)`` dimensions is returned as it is;
    - a tuple or list (e.g. a transformer trunk returning ``(tokens, indices)``): its first element, converted;
    - transformer tokens ``(B, N, C)`` are put back on their grid: the grid is ``input_spatial // k`` for the integer
      patch size ``k`` (the same on every axis, as nnU-Net's Primus embeds 8×8×8 patches) with ``prod(grid) <= N``
      as large as possible; the ``N − prod(grid)`` leading tokens (register/class tokens) are dropped; tokens are in
      row-major grid order (``b (x y z) c``, as Primus flattens its patch embedding).

    Args:
        output: what the module's forward returned.
        input_spatial: the network input's spatial shape.

    Raises:
        ConfigurationError: the output is neither (names its shape).
    """
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        output = output[0]
    if not isinstance(output, Tensor):
        raise ConfigurationError(f"a hooked module returned {type(output).__name__}, not a tensor")
    spatial = [int(s) for s in input_spatial]
    if output.ndim == 2 + len(spatial):
        return output
    if output.ndim == 3 and len(spatial) > 1:
        batch, tokens, channels = output.shape
        for k in range(1, max(spatial) + 1):
            if any(s % k for s in spatial):
                continue
            grid = [s // k for s in spatial]
            cells = math.prod(grid)
            if cells <= tokens:
                if tokens - cells >= cells:  # more extra tokens than grid cells: not a patch grid of this input
                    break
                return output[:, tokens - cells:].transpose(1, 2).reshape(batch, channels, *grid)
    raise ConfigurationError(
        f"a hooked module's output of shape {tuple(output.shape)} is neither a feature map (B, C, *spatial) nor "
        f"transformer tokens (B, N, C) on a patch grid of the {tuple(spatial)} input; choose another stage")


class FeatureRecorder:
    """Forward hooks that keep the latest output of each named submodule.

    Use as a context manager (hooks attached on enter, removed on exit) or call ``attach()`` / ``detach()``.
    ``features[name]`` holds the module's latest output as returned (a tensor for DNA stages), with its graph:
    student features keep gradients, teacher features run under ``no_grad`` have none.
    """

    def __init__(self, network: nn.Module, module_names: Sequence[str]) -> None:
        """Args:
            network: the network, possibly compiled or DDP-wrapped.
            module_names: submodule names as in ``dict(network.named_modules())`` of the bare network.

        Raises:
            ConfigurationError: a name does not exist (the message lists the stage-level names that do).
        """
        self.network = unwrap_network(network)
        modules = dict(self.network.named_modules())
        missing = [name for name in module_names if name not in modules or not name]
        if missing:
            raise ConfigurationError(
                f"{type(self.network).__name__} has no module named {', '.join(repr(n) for n in missing)}; "
                f"stage-level modules are: {', '.join(stage_level_names(self.network))}")
        self.module_names = list(dict.fromkeys(module_names))
        self._modules = {name: modules[name] for name in self.module_names}
        self._handles: list[RemovableHandle] = []
        self.features: dict[str, Any] = {}

    @property
    def attached(self) -> bool:
        """True while the hooks are registered."""
        return bool(self._handles)

    def attach(self) -> FeatureRecorder:
        """Register the hooks (idempotent). Returns self."""
        if not self._handles:
            self._handles = [module.register_forward_hook(self._hook(name)) for name, module in self._modules.items()]
        return self

    def detach(self) -> None:
        """Remove the hooks; the features recorded so far stay available until ``clear()``."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def clear(self) -> None:
        """Forget the stored features (e.g. after the loss, to free the memory they hold)."""
        self.features = {}

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def store(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            self.features[name] = output

        return store

    def __enter__(self) -> FeatureRecorder:
        return self.attach()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.detach()
