"""Train a trainer through nnU-Net's DDP code path with any number of ranks, one rank included (GPU check).

``nnUNetv2_train -num_gpus N`` enters nnU-Net's distributed path (``run_ddp``: NCCL process group, the network
wrapped in ``DistributedDataParallel``, per-rank batch sizes, all-gathered losses, rank-split validation) only for
N > 1. This script calls the same ``run_ddp`` through ``torch.multiprocessing.spawn`` with ``--world-size`` ranks, so
the distillation trainers' DDP handling (hooks on the wrapped student, adapters beside it, checkpoints written by rank
0, ``--c`` and ``--val``) can be exercised on a machine with a single GPU. With ``--world-size`` equal to the GPU count
it is ``nnUNetv2_train -num_gpus N``.

    python benchmarks/gpu/gpu_ddp_smoke.py 501 3d_quick 0 -tr nnUNetTrainerMKDQuick [--world-size 1] [--c | --val]
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.multiprocessing as mp
from nnunetv2.run.run_training import find_free_network_port, run_ddp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("configuration")
    parser.add_argument("fold")
    parser.add_argument("-tr", default="nnUNetTrainer")
    parser.add_argument("-p", default="nnUNetPlans")
    parser.add_argument("--world-size", type=int, default=max(torch.cuda.device_count(), 1))
    parser.add_argument("--c", action="store_true", help="continue training (as nnUNetv2_train --c)")
    parser.add_argument("--val", action="store_true", help="only run the validation (as nnUNetv2_train --val)")
    args = parser.parse_args()
    fold = args.fold if args.fold == "all" else int(args.fold)
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ.setdefault("MASTER_PORT", str(find_free_network_port()))
    # run_ddp(rank, dataset, configuration, fold, tr, p, disable_checkpointing, c, val, pretrained_weights, npz,
    #         val_with_best, world_size), as nnunetv2.run.run_training.run_training passes them
    mp.spawn(run_ddp, args=(args.dataset, args.configuration, fold, args.tr, args.p, False, args.c, args.val, None,
                            False, False, args.world_size), nprocs=args.world_size, join=True)


if __name__ == "__main__":
    main()
