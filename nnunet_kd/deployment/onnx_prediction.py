"""nnU-Net's prediction pipeline with an ONNX Runtime session in place of the PyTorch network.

:func:`onnx_predictor` returns an ``nnUNetPredictor`` initialised from an export folder (:mod:`.onnx_export`):
nnU-Net's own preprocessing, Gaussian-weighted sliding window, optional mirroring, resampling back to the image
and export all run unchanged; only the network call goes to ONNX Runtime on the CPU. So its segmentations can be
compared voxel by voxel with ``nnUNetv2_predict``'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnunet_kd.deployment.onnx_export import MODEL_FILE, RECORD_FILE, require_onnx
from nnunet_kd.errors import InputError


class OnnxRuntimeNetwork(nn.Module):
    """Looks like the PyTorch network to nnU-Net's predictor: ``(B, C, *patch)`` tensor in, logits tensor out.

    The ONNX model takes one patch at a time; a batch is run patch by patch. It has no parameters, so the
    predictor's ``load_state_dict`` of an empty parameter set is a no-op.
    """

    def __init__(self, model_file: str | os.PathLike, threads: int | None = None):
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = x.detach().cpu().float().numpy()
        logits = [self.session.run(None, {self.input_name: patches[i: i + 1]})[0] for i in range(patches.shape[0])]
        return torch.from_numpy(np.concatenate(logits, axis=0))


def onnx_predictor(export_folder: str | os.PathLike, tile_step_size: float = 0.5, use_mirroring: bool = True,
                   threads: int | None = None, verbose: bool = False):
    """An ``nnUNetPredictor`` (CPU) whose network is the export's ONNX model.

    Raises:
        ConfigurationError: ``onnxruntime`` is not installed.
        InputError: ``export_folder`` is not an export (no ``model.onnx``, ``plans.json``, ``dataset.json``,
            ``export.json``).
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    require_onnx()
    folder = Path(export_folder)
    missing = [n for n in (MODEL_FILE, "plans.json", "dataset.json", RECORD_FILE) if not (folder / n).is_file()]
    if missing:
        raise InputError(f"{folder} is not an ONNX export of nnunet_kd export-onnx (missing {', '.join(missing)})")
    record = json.loads((folder / RECORD_FILE).read_text())
    plans_manager = PlansManager(json.loads((folder / "plans.json").read_text()))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    predictor = nnUNetPredictor(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=verbose,
                                allow_tqdm=verbose)
    mirroring = record.get("inference_allowed_mirroring_axes")
    predictor.manual_initialization(OnnxRuntimeNetwork(folder / MODEL_FILE, threads), plans_manager,
                                    plans_manager.get_configuration(record["configuration"]), [{}], dataset_json,
                                    record["trainer"], tuple(mirroring) if mirroring else None)
    return predictor
