"""Keep parameters that live outside nnU-Net's ``DistributedDataParallel`` wrapper in step across ranks.

The distillation adapters (:class:`~nnunet_kd.distillation.objective.DistillationObjective`'s parameters) train with the
student but are not part of the wrapped network, so DDP neither broadcasts their initial values nor averages their
gradients. Without these two calls every rank would start from its own random adapters and drift apart.
All functions are no-ops when no process group is initialised (single-process training).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_parameters(parameters: Iterable[torch.nn.Parameter], src: int = 0) -> None:
    """Copy the values of ``parameters`` on rank ``src`` to every other rank (in place)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for parameter in parameters:
            dist.broadcast(parameter.data, src=src)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over ranks, as DDP does for the wrapped network (in place).

    Call after ``backward`` and before gradient clipping / unscaling. A parameter without a gradient on this rank
    contributes zeros, so that every rank issues the same collectives in the same order.
    """
    if not is_distributed():
        return
    world_size = dist.get_world_size()
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
        parameter.grad.div_(world_size)


def mean_over_ranks(values: dict[str, float], keys: Sequence[str]) -> dict[str, float]:
    """Average per-rank scalars (e.g. one epoch's logged loss components) over all ranks; every rank gets the mean."""
    if not is_distributed():
        return {key: values[key] for key in keys}
    gathered: list[dict[str, float] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, {key: values[key] for key in keys})
    return {key: float(np.mean([g[key] for g in gathered])) for key in keys}
