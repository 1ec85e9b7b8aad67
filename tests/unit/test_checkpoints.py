"""Checkpoints load without running code: a pickle payload, a cut-off file and a foreign file are each one message."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from nnunet_kd.errors import InputError
from nnunet_kd.integrity.checkpoints import load_checkpoint, network_weights


class Payload:
    """Runs a command when unpickled (what a malicious checkpoint would carry)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling creates the marker file


def nnunet_like(weights_prefix: str = "") -> dict:
    return {"network_weights": {f"{weights_prefix}conv.weight": torch.ones(2, 2)},
            "logging": {"mean_fg_dice": [np.float64(0.5)], "epoch_end_timestamps": [np.float32(1.0)]},
            "init_args": {"configuration": "3d_fullres", "fold": 0}, "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2), "current_epoch": 3}


def test_an_nnunet_checkpoint_with_numpy_log_values_loads(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save(nnunet_like("_orig_mod."), path)
    checkpoint = load_checkpoint(path, "teacher t")
    assert checkpoint["trainer_name"] == "nnUNetTrainer"
    assert list(network_weights(checkpoint)) == ["conv.weight"]


def test_a_pickle_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "checkpoint_final.pth"
    torch.save({**nnunet_like(), "extra": Payload(marker)}, path)
    with pytest.raises(InputError, match="teacher t: checkpoint .* could run code when loaded; refusing"):
        load_checkpoint(path, "teacher t")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what a plain torch.load does with the same file
    assert marker.exists()


def test_a_cut_off_checkpoint_is_named_in_one_line(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    torch.save(nnunet_like(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match=r"student: checkpoint .*checkpoint_final\.pth is cut off or corrupt"):
        load_checkpoint(path, "student")


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pth")
    foreign = tmp_path / "other.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not an nnU-Net checkpoint"):
        load_checkpoint(foreign)
    not_torch = tmp_path / "notes.pth"
    not_torch.write_bytes(pickle.dumps("plain text"))
    with pytest.raises(InputError):
        load_checkpoint(not_torch)
