"""Adapters outside DDP stay in step: broadcast from rank 0, gradients averaged, logged values averaged.

Two real CPU processes in a gloo process group (``torch.multiprocessing.spawn``): each rank starts from its own
values, so a no-op implementation fails every assertion.
"""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnunet_kd.distillation.distributed import average_gradients, broadcast_parameters, is_distributed, mean_over_ranks


def _worker(rank: int, world_size: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        adapter = torch.nn.Parameter(torch.full((3,), float(rank + 1)))
        other = torch.nn.Parameter(torch.zeros(2))  # no gradient on rank 1: must still join the collective
        broadcast_parameters([adapter, other])
        start = adapter.detach().clone()
        adapter.grad = torch.full((3,), 10.0 * (rank + 1))
        other.grad = torch.ones(2) if rank == 0 else None
        average_gradients([adapter, other])
        logged = mean_over_ranks({"kd_kl": float(rank), "kd_mid": 2.0 * rank, "extra": 5.0}, ["kd_kl", "kd_mid"])
        results[rank] = (start.tolist(), adapter.grad.tolist(), other.grad.tolist(), logged, is_distributed())
    finally:
        dist.destroy_process_group()


def test_two_ranks_share_adapters_gradients_and_logged_values(tmp_path):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(2, str(tmp_path / "init"), results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        start, grad, other_grad, logged, distributed = results[rank]
        assert start == [1.0, 1.0, 1.0]  # rank 0's initial values everywhere
        assert grad == [15.0, 15.0, 15.0]  # mean of 10 and 20
        assert other_grad == [0.5, 0.5]  # rank 1 contributed zeros
        assert logged == {"kd_kl": 0.5, "kd_mid": 1.0}
        assert distributed


def test_single_process_is_a_no_op():
    parameter = torch.nn.Parameter(torch.ones(2))
    parameter.grad = torch.full((2,), 3.0)
    broadcast_parameters([parameter])
    average_gradients([parameter])
    assert parameter.grad.tolist() == [3.0, 3.0]
    assert mean_over_ranks({"a": 1.5, "b": 2.0}, ["a"]) == {"a": 1.5}
    assert not is_distributed()
