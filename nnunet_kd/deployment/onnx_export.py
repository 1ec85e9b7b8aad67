"""A trained nnU-Net model (one fold) as an ONNX file, with what nnU-Net needs to predict with it beside it.

The export folder holds::

    model.onnx      the network without deep supervision, input (1, C, *patch), output (1, heads, *patch) logits
    plans.json      the model's plans (preprocessing, patch, spacing) as nnU-Net wrote them
    dataset.json    labels, channels, file ending
    export.json     model, fold, configuration, checkpoint fingerprint, the check against PyTorch, versions

The network is built as nnU-Net's predictor builds it (the trainer's ``build_network_architecture``) from a
checkpoint loaded with ``weights_only=True``, exported with PyTorch's ONNX exporter (``torch.export`` based), and
checked: ONNX Runtime and PyTorch run the same random patches and their largest absolute logit difference is
recorded (the export fails above ``tolerance``). The folder is written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nnunet_kd.atomic import atomic_path
from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.integrity.checkpoints import load_checkpoint, network_weights
from nnunet_kd.integrity.fingerprints import files_fingerprint

MODEL_FILE, RECORD_FILE = "model.onnx", "export.json"


@dataclass(frozen=True)
class ExportRecord:
    """What ``export.json`` says about an export."""

    model_folder: str
    fold: str
    configuration: str
    trainer: str
    checkpoint: str
    checkpoint_fingerprint: str
    input_shape: list[int]
    num_heads: int
    check_patches: int
    max_abs_logit_difference: float
    opset: int
    torch_version: str
    onnxruntime_version: str


def require_onnx() -> None:
    """``ConfigurationError`` naming the extra to install when ``onnx``/``onnxruntime`` are missing."""
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise ConfigurationError(f"the ONNX export and prediction need the '{module}' package: "
                                     "pip install 'nnunet-kd[deploy]'") from None


@dataclass
class TrainedModel:
    """One fold of a trained model, built as nnU-Net's predictor builds it (eval mode, no deep supervision)."""

    network: object
    plans_manager: object
    configuration_manager: object
    dataset_json: dict
    checkpoint: dict
    num_inputs: int


def build_trained_network(model_folder: Path, fold: str, checkpoint_name: str = "checkpoint_final.pth"
                          ) -> TrainedModel:
    """Build one fold of a trained model and load its weights.

    Raises:
        InputError: no such model folder, fold or checkpoint, or a checkpoint that is damaged or carries code.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    for name in ("plans.json", "dataset.json"):
        if not (model_folder / name).is_file():
            raise InputError(f"{model_folder} is not a trained nnU-Net model folder (no {name})")
    checkpoint_file = model_folder / f"fold_{fold}" / checkpoint_name
    if not checkpoint_file.is_file():
        raise InputError(f"fold {fold} of {model_folder} has no {checkpoint_name} (train it first, or pass "
                         "--checkpoint)")
    checkpoint = load_checkpoint(checkpoint_file, f"{model_folder.name} fold {fold}")
    plans = json.loads((model_folder / "plans.json").read_text())
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    manager = PlansManager(plans)
    configuration = checkpoint["init_args"]["configuration"]
    cm = manager.get_configuration(configuration)
    trainer_class = recursive_find_trainer_class_by_name(checkpoint["trainer_name"])
    if trainer_class is None:
        raise ConfigurationError(f"trainer {checkpoint['trainer_name']} of {model_folder} is not found (is "
                                 "nnUNet_extTrainer set?)")
    num_inputs = determine_num_input_channels(manager, cm, dataset_json)
    num_heads = manager.get_label_manager(dataset_json).num_segmentation_heads
    network = trainer_class.build_network_architecture(manager, cm, num_inputs, num_heads, False)
    network.load_state_dict(network_weights(checkpoint))
    network.eval()
    return TrainedModel(network, manager, cm, dataset_json, checkpoint, num_inputs)


def export_onnx(model_folder: str | os.PathLike, fold: str, output: str | os.PathLike,
                checkpoint_name: str = "checkpoint_final.pth", check_patches: int = 3, tolerance: float = 1e-3,
                opset: int = 18, overwrite: bool = False) -> ExportRecord:
    """Export one fold of a trained model to ``output`` (see the module docstring).

    Raises:
        ConfigurationError: ``onnx``/``onnxruntime`` missing; ``output`` exists (and not ``overwrite``) or lies
            inside the model folder.
        InputError: see :func:`build_trained_network`.
        NnunetKdError: ONNX Runtime's logits differ from PyTorch's by more than ``tolerance``.
    """
    import torch

    from nnunet_kd.errors import NnunetKdError
    from nnunet_kd.paths import refuse_writing_into_inputs

    require_onnx()
    import onnxruntime

    model_folder, output = Path(model_folder), Path(output)
    refuse_writing_into_inputs([output], [model_folder], "nnunet_kd export-onnx")
    if output.exists() and not overwrite:
        raise ConfigurationError(f"{output} exists; pass --overwrite to replace it")
    model = build_trained_network(model_folder, fold, checkpoint_name)
    network, checkpoint = model.network, model.checkpoint
    shape = [1, model.num_inputs, *[int(s) for s in model.configuration_manager.patch_size]]
    generator = torch.Generator().manual_seed(0)
    patches = [torch.randn(shape, generator=generator) for _ in range(max(1, check_patches))]
    with atomic_path(output) as tmp:
        tmp.mkdir(parents=True)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(network, (patches[0],), str(tmp / MODEL_FILE), input_names=["image"],
                              output_names=["logits"], opset_version=opset, dynamo=True, verbose=False,
                              external_data=False)  # one file: the weights of a student are far below 2 GB
        session = onnxruntime.InferenceSession(str(tmp / MODEL_FILE), providers=["CPUExecutionProvider"])
        difference = 0.0
        with torch.no_grad():
            for patch in patches:
                reference = network(patch).numpy()
                logits = session.run(None, {"image": patch.numpy()})[0]
                difference = max(difference, float(np.abs(logits - reference).max()))
        if difference > tolerance:
            raise NnunetKdError(f"the ONNX model's logits differ from PyTorch's by up to {difference:.2e} "
                                f"(tolerance {tolerance:.0e}); nothing was written")
        for name in ("plans.json", "dataset.json"):
            shutil.copy2(model_folder / name, tmp / name)
        checkpoint_file = model_folder / f"fold_{fold}" / checkpoint_name
        record = ExportRecord(
            model_folder=str(model_folder), fold=str(fold), configuration=checkpoint["init_args"]["configuration"],
            trainer=checkpoint["trainer_name"], checkpoint=checkpoint_name,
            checkpoint_fingerprint=files_fingerprint([checkpoint_file]), input_shape=shape,
            num_heads=int(reference.shape[1]), check_patches=len(patches), max_abs_logit_difference=difference,
            opset=opset, torch_version=torch.__version__, onnxruntime_version=onnxruntime.__version__)
        record_dict = asdict(record)
        record_dict["inference_allowed_mirroring_axes"] = checkpoint.get("inference_allowed_mirroring_axes")
        (tmp / RECORD_FILE).write_text(json.dumps(record_dict, indent=2) + "\n")
        if overwrite and output.exists():
            shutil.rmtree(output)
    return record

