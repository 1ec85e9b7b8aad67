"""The distillation trainers compile the student only after the feature hooks exist, and never under DDP.

nnU-Net's ``initialize`` compiles when ``_do_i_compile()`` says so, before any hook could be registered; the base
answers False until its own ``initialize`` has built the objective and attached the hooks, then defers to nnU-Net's
rule (CUDA, not Windows, ``nnUNet_compile``). The trainer object is built without ``__init__`` (that needs a
dataset): only the attributes the rule reads are set.
"""

import pytest
import torch

from nnunet_kd.trainers.knowledge_distillation import nnUNetTrainerDistillationBase


def _trainer(device: str, ready: bool, ddp: bool) -> nnUNetTrainerDistillationBase:
    trainer = object.__new__(nnUNetTrainerDistillationBase)
    trainer.device = torch.device(device)
    trainer.is_ddp = ddp
    if ready:
        trainer.kd_objective = object()  # stands in for the built objective (hooks attached)
    trainer.print_to_log_file = lambda *args, **kwargs: None
    return trainer


@pytest.mark.parametrize(("ready", "ddp", "expected"), [(False, False, False), (True, False, True),
                                                         (True, True, False)])
def test_compiles_on_cuda_only_after_hooks_and_not_under_ddp(monkeypatch, ready, ddp, expected):
    monkeypatch.delenv("nnUNet_compile", raising=False)  # nnU-Net's default on CUDA: compile
    assert _trainer("cuda", ready, ddp)._do_i_compile() is expected


def test_follows_nnunet_switches(monkeypatch):
    monkeypatch.setenv("nnUNet_compile", "f")
    assert _trainer("cuda", True, False)._do_i_compile() is False
    monkeypatch.delenv("nnUNet_compile")
    assert _trainer("cpu", True, False)._do_i_compile() is False
