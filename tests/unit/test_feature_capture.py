"""FeatureRecorder on a tiny real PlainConvUNet."""

from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from nnunet_kd.distillation.feature_capture import FeatureRecorder, feature_map, stage_level_names
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.network_wrappers import unwrap_network


def _unet() -> PlainConvUNet:
    torch.manual_seed(0)
    return PlainConvUNet(1, 3, (4, 8, 16), torch.nn.Conv3d, 3, (1, 2, 2), (2, 2, 2), 2, (1, 1), conv_bias=True,
                         norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"affine": True},
                         nonlin=torch.nn.LeakyReLU, deep_supervision=True)


def test_records_stage_outputs() -> None:
    network, x = _unet(), torch.randn(1, 1, 16, 16, 16)
    with FeatureRecorder(network, ["encoder.stages.0", "encoder.stages.2", "decoder.stages.1"]) as recorder:
        network(x)
    shapes = {name: tuple(f.shape) for name, f in recorder.features.items()}
    assert shapes == {"encoder.stages.0": (1, 4, 16, 16, 16), "encoder.stages.2": (1, 16, 4, 4, 4),
                      "decoder.stages.1": (1, 4, 16, 16, 16)}
    with torch.no_grad():
        assert torch.allclose(recorder.features["encoder.stages.0"], network.encoder.stages[0](x))
    assert recorder.features["decoder.stages.1"].requires_grad  # student features keep their graph


def test_attach_detach_and_latest_output() -> None:
    network = _unet()
    recorder = FeatureRecorder(network, ["encoder.stages.1"]).attach()
    network(torch.zeros(1, 1, 16, 16, 16))
    first = recorder.features["encoder.stages.1"]
    network(torch.ones(1, 1, 16, 16, 16))
    assert recorder.features["encoder.stages.1"] is not first  # latest output kept
    recorder.detach()
    recorder.clear()
    network(torch.zeros(1, 1, 16, 16, 16))
    assert not recorder.attached and recorder.features == {}  # no hook fires after detach


def test_unknown_name_lists_stage_level_names() -> None:
    with pytest.raises(ConfigurationError) as error:
        FeatureRecorder(_unet(), ["encoder.stages.7"])
    message = str(error.value)
    assert "encoder.stages.7" in message and "encoder.stages.2" in message and "decoder.stages.1" in message
    assert "convs" not in message  # only stage-level names are listed
    assert stage_level_names(_unet()) == ["encoder.stages.0", "encoder.stages.1", "encoder.stages.2",
                                          "decoder.stages.0", "decoder.stages.1"]


class _CompiledLike(torch.nn.Module):
    """Stands in for torch.compile's OptimizedModule (importing torch._dynamo costs seconds): ``_orig_mod``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self._orig_mod = module


def test_unwraps_compile_and_data_parallel() -> None:
    network = _unet()
    compiled = _CompiledLike(network)
    assert unwrap_network(compiled) is network
    assert unwrap_network(torch.nn.DataParallel(compiled)) is network
    recorder = FeatureRecorder(torch.nn.DataParallel(network), ["decoder.stages.0"])
    with recorder:
        network(torch.zeros(1, 1, 16, 16, 16))
    assert tuple(recorder.features["decoder.stages.0"].shape) == (1, 8, 8, 8, 8)


def test_feature_map_keeps_maps_and_takes_the_first_tensor_of_a_tuple() -> None:
    features = torch.randn(2, 4, 2, 3, 3)
    assert feature_map(features, (8, 12, 12)) is features
    assert feature_map((features, torch.arange(3)), (8, 12, 12)) is features


def test_feature_map_puts_tokens_back_on_their_patch_grid() -> None:
    # tokens flattened the way nnU-Net's Primus does it: "b c x y z -> b (x y z) c" after an 8x8x8 patch embedding
    grid = torch.randn(2, 5, 2, 3, 4)
    tokens = grid.flatten(2).transpose(1, 2)  # (B, N = 24, C)
    assert torch.equal(feature_map(tokens, (16, 24, 32)), grid)
    registers = torch.randn(2, 3, 5)  # leading register tokens are dropped
    assert torch.equal(feature_map(torch.cat([registers, tokens], dim=1), (16, 24, 32)), grid)


def test_feature_map_refuses_what_is_no_grid() -> None:
    with pytest.raises(ConfigurationError, match=r"\(2, 7, 5\).*choose another stage"):
        feature_map(torch.randn(2, 7, 5), (16, 24, 32))  # 7 tokens fit no patch grid of this input
    with pytest.raises(ConfigurationError, match="not a tensor"):
        feature_map({"x": 1}, (16, 24, 32))


def test_stage_level_names_of_a_transformer_list_its_blocks() -> None:
    from dynamic_network_architectures.architectures.primus import Primus

    primus = Primus(1, 48, (4, 4, 4), 2, 2, 4, (8, 16, 16), drop_path_rate=0.0, scale_attn_inner=True,
                    init_values=0.1)
    names = stage_level_names(primus)
    assert {"down_projection", "eva.blocks.0", "eva.blocks.1", "up_projection"} <= set(names)
