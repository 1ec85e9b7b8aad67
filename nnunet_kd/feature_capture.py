"""Capture intermediate features of a network with forward hooks on named submodules.

Names are those of ``dict(network.named_modules())`` on the bare network, e.g. ``encoder.stages.0`` or
``decoder.stages.3`` for dynamic-network-architectures U-Nets. ``torch.compile``'s wrapper (``_orig_mod``) and
(Distributed)DataParallel's ``.module`` are unwrapped first, so the same names work for a wrapped student; with
``torch.compile`` register the hooks first and compile with :func:`compile_keeping_hooks` (notes/anchors.md §5.5).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.utils.hooks import RemovableHandle

from nnunet_kd.errors import ConfigurationError

_STAGE_NAME = re.compile(r"(^|\.)stages\.\d+$")


def compile_keeping_hooks(network: nn.Module) -> nn.Module:
    """``torch.compile(network)`` for a network whose forward hooks are already registered.

    Dynamo does not guard on module hooks by default (``skip_nnmodule_hook_guards``): a graph traced earlier in the
    process for an unhooked network of the same class would be reused and the hooks would never fire (seen on an
    H100, benchmarks/README.md). The guard is switched on, process-wide, before compiling.
    """
    torch._dynamo.config.skip_nnmodule_hook_guards = False
    return torch.compile(network)


def unwrap_network(network: nn.Module) -> nn.Module:
    """Strip ``torch.compile`` (``_orig_mod``) and (Distributed)DataParallel (``.module``) wrappers, in any nesting."""
    while True:
        if isinstance(getattr(network, "_orig_mod", None), nn.Module):
            network = network._orig_mod
        elif isinstance(network, (DistributedDataParallel, DataParallel)):
            network = network.module
        else:
            return network


def stage_level_names(network: nn.Module) -> list[str]:
    """Names ending in ``stages.<i>`` (DNA encoders/decoders); if there are none, the modules two levels deep."""
    names = [name for name, _ in unwrap_network(network).named_modules() if name]
    stages = [name for name in names if _STAGE_NAME.search(name)]
    return stages or [name for name in names if name.count(".") <= 1]


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
