"""The ONNX Runtime stand-in for a network inside nnU-Net's predictor, and the missing-extra message."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch

from nnunet_kd.errors import ConfigurationError


def test_a_batch_runs_patch_by_patch_and_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from nnunet_kd.deployment.onnx_prediction import OnnxRuntimeNetwork

    network = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.LeakyReLU()).eval()
    patch = torch.randn(1, 1, 8, 8, 8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (patch,), str(tmp_path / "m.onnx"), input_names=["image"], dynamo=True,
                          verbose=False)
    runtime = OnnxRuntimeNetwork(tmp_path / "m.onnx", threads=1)
    batch = torch.randn(3, 1, 8, 8, 8)  # the export takes one patch; the stand-in takes any batch
    with torch.no_grad():
        assert torch.allclose(runtime(batch), network(batch), atol=1e-5)
    assert list(runtime.parameters()) == [] and runtime.load_state_dict({}) is not None


def test_a_missing_onnxruntime_is_one_clear_error(monkeypatch):
    from nnunet_kd.deployment.onnx_export import require_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConfigurationError, match=r"'onnxruntime' package: pip install 'nnunet-kd\[deploy\]'"):
        require_onnx()
