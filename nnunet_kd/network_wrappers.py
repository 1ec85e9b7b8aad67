"""The wrappers nnU-Net puts around a network: ``torch.compile`` and (Distributed)DataParallel.

Code that needs the bare network (module names for feature hooks, attributes such as the dual-output student's box
logits) unwraps it with :func:`unwrap_network`; networks with forward hooks are compiled with
:func:`compile_keeping_hooks`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel


def compile_keeping_hooks(network: nn.Module) -> nn.Module:
    """``torch.compile(network)`` for a network whose forward hooks are already registered.

    Dynamo does not guard on module hooks by default (``skip_nnmodule_hook_guards``): a graph traced earlier in the
    process for an unhooked network of the same class would be reused and the hooks would never fire. The guard is
    switched on, process-wide, before compiling.
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
