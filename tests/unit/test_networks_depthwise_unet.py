"""The depthwise-separable residual U-Net (compact student) honours the DNA / nnU-Net network contract."""

from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn

from nnunet_kd.students.aspp import AtrousSpatialPyramidPooling, check_aspp_rates
from nnunet_kd.students.depthwise_unet import DepthwiseSeparableResidualUNet
from nnunet_kd.students.separable_blocks import DepthwiseSeparableConv, DepthwiseSeparableResidualBlock


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is as fast and does not oversubscribe the shared CPU cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CLASS_PATH = "nnunet_kd.students.depthwise_unet.DepthwiseSeparableResidualUNet"


def tiny_kwargs(dim: int, **overrides) -> dict:
    """A 4-stage network with few channels (fast on CPU)."""
    conv, norm = (nn.Conv3d, nn.InstanceNorm3d) if dim == 3 else (nn.Conv2d, nn.InstanceNorm2d)
    kwargs = dict(
        input_channels=1, n_stages=4, features_per_stage=[4, 8, 12, 16], conv_op=conv, kernel_sizes=3,
        strides=[1, 2, 2, [1, 2, 2] if dim == 3 else 2], n_blocks_per_stage=1, num_classes=3,
        n_conv_per_stage_decoder=2, conv_bias=True, norm_op=norm, norm_op_kwargs={"eps": 1e-5, "affine": True},
        nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, aspp_rates=(1, 2),
    )
    kwargs.update(overrides)
    return kwargs


def ct_plan_arch_kwargs() -> dict:
    """The architecture kwargs of a typical CT 3d_fullres plan, as strings (like a plans file)."""
    return {
        "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
        "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 6,
        "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
        "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


REQUIRES_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]


@pytest.mark.parametrize("dim,spatial", [(3, (8, 16, 16)), (2, (32, 24))])
def test_forward_shapes_with_and_without_deep_supervision(dim, spatial):
    torch.manual_seed(0)
    network = DepthwiseSeparableResidualUNet(**tiny_kwargs(dim), deep_supervision=True)
    x = torch.randn(2, 1, *spatial)
    outputs = network(x)
    assert isinstance(outputs, list) and len(outputs) == 3  # n_stages - 1
    expected = [spatial]
    for stride in network.encoder.strides[1:-1]:
        expected.append(tuple(s // k for s, k in zip(expected[-1], stride)))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, *s) for s in expected]

    network.decoder.deep_supervision = False
    single = network(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 3, *spatial)
    assert torch.allclose(single, outputs[0])


def test_state_dict_loads_with_deep_supervision_on_and_off():
    trained = DepthwiseSeparableResidualUNet(**tiny_kwargs(3), deep_supervision=True)
    for deep_supervision in (True, False):
        fresh = DepthwiseSeparableResidualUNet(**tiny_kwargs(3), deep_supervision=deep_supervision)
        fresh.load_state_dict(trained.state_dict(), strict=True)
    trained.eval()
    fresh.eval()
    x = torch.randn(1, 1, 8, 16, 16)
    trained.decoder.deep_supervision = False
    assert torch.equal(trained(x), fresh(x))


def test_get_network_from_plans_round_trip_from_dotted_path():
    arch_kwargs = {**ct_plan_arch_kwargs(), "features_per_stage": [4, 8, 8, 8, 8, 8], "n_blocks_per_stage": [1] * 6,
                   "aspp_rates": [1, 2], "aspp_image_pooling": True}
    network = get_network_from_plans(CLASS_PATH, arch_kwargs, REQUIRES_IMPORT, 1, 2, allow_init=True,
                                     deep_supervision=True)
    assert type(network) is DepthwiseSeparableResidualUNet
    assert network.encoder.conv_op is nn.Conv3d and network.encoder.norm_op is nn.InstanceNorm3d
    assert network.decoder.deep_supervision is True
    outputs = network(torch.randn(1, 1, 32, 64, 64))  # bottleneck 2x2x2
    assert len(outputs) == 5 and outputs[0].shape == (1, 2, 32, 64, 64)
    # initialize ran: the last norm of every residual block starts at zero (the block begins as its skip path)
    blocks = [m for m in network.modules() if isinstance(m, DepthwiseSeparableResidualBlock)]
    assert blocks and all(torch.count_nonzero(b.last_norm.weight) == 0 for b in blocks)


def test_set_deep_supervision_enabled_like_nnunet_trainer():
    network = DepthwiseSeparableResidualUNet(**tiny_kwargs(3), deep_supervision=False)
    x = torch.randn(1, 1, 8, 16, 16)
    assert isinstance(network(x), torch.Tensor)
    network.decoder.deep_supervision = True  # what nnUNetTrainer.set_deep_supervision_enabled does
    assert isinstance(network(x), list)


def test_three_by_three_convolutions_are_depthwise_separable():
    network = DepthwiseSeparableResidualUNet(**tiny_kwargs(3))
    separable = [m for m in network.modules() if isinstance(m, DepthwiseSeparableConv)]
    assert len(separable) >= 2 * 4 + 2 * 3  # encoder blocks + decoder blocks (+ ASPP branches)
    for conv in separable:
        assert conv.depthwise.groups == conv.depthwise.in_channels == conv.depthwise.out_channels
        assert conv.pointwise.kernel_size == (1, 1, 1) and conv.pointwise.groups == 1
    # apart from the stem, every dense (groups == 1) conv with a spatial kernel > 1 is absent
    stem_convs = set(network.encoder.stem.modules())
    dense_spatial = [m for m in network.modules() if isinstance(m, nn.Conv3d) and m not in stem_convs
                     and m.groups == 1 and max(m.kernel_size) > 1]
    assert dense_spatial == []


def test_aspp_branches_follow_the_rates_and_can_be_switched_off():
    network = DepthwiseSeparableResidualUNet(**tiny_kwargs(3, aspp_rates=(1, 2, 3)))
    aspp = network.aspp
    assert isinstance(aspp, AtrousSpatialPyramidPooling)
    dilations = [branch[0].depthwise.dilation for branch in aspp.branches[1:]]
    assert dilations == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    assert aspp.image_pooling is not None
    assert aspp.projection.conv.in_channels == 5 * 16  # 1x1 + 3 rates + image pooling, 16 channels each
    x = torch.randn(1, 1, 8, 32, 32)
    assert network(x).shape == (1, 3, 8, 32, 32)

    without = DepthwiseSeparableResidualUNet(**tiny_kwargs(3, aspp_rates=None))
    assert isinstance(without.aspp, nn.Identity)
    assert not any(k.startswith("aspp.") for k in without.state_dict())
    assert sum(p.numel() for p in without.parameters()) < sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize("rates", [(0,), (2, 2), (), (1.5,)])
def test_aspp_rejects_bad_rates(rates):
    with pytest.raises(ValueError):
        check_aspp_rates(rates)


def test_aspp_rate_must_fit_the_bottleneck():
    check_aspp_rates((1, 2, 3), bottleneck_size=(4, 5, 5))
    with pytest.raises(ValueError, match="too large"):
        check_aspp_rates((1, 4), bottleneck_size=(4, 5, 5))


def test_named_stages_can_be_hooked():
    network = DepthwiseSeparableResidualUNet(**tiny_kwargs(3), deep_supervision=True)
    shapes: dict[str, tuple] = {}
    for name in ("encoder.stages.0", "encoder.stages.3", "decoder.stages.0", "decoder.stages.2"):
        network.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape)))
    network(torch.randn(1, 1, 8, 16, 16))
    assert shapes == {"encoder.stages.0": (1, 4, 8, 16, 16), "encoder.stages.3": (1, 16, 2, 2, 2),
                      "decoder.stages.0": (1, 12, 2, 4, 4), "decoder.stages.2": (1, 4, 8, 16, 16)}


def test_compute_conv_feature_map_size_grows_with_input_and_aspp():
    with_aspp = DepthwiseSeparableResidualUNet(**tiny_kwargs(3))
    without = DepthwiseSeparableResidualUNet(**tiny_kwargs(3, aspp_rates=None))
    small = with_aspp.compute_conv_feature_map_size((8, 16, 16))
    large = with_aspp.compute_conv_feature_map_size((16, 32, 32))
    assert 0 < small < large
    assert with_aspp.compute_conv_feature_map_size((8, 16, 16)) > without.compute_conv_feature_map_size((8, 16, 16))
    # at least every stored stage output is counted
    stage_outputs = sum(c * 8 * 16 * 16 // 4 ** i for i, c in enumerate([4, 8, 12]))
    assert without.compute_conv_feature_map_size((8, 16, 16)) > stage_outputs
    with pytest.raises(ValueError):
        with_aspp.compute_conv_feature_map_size((1, 8, 16, 16))


def test_compact_student_has_at_most_half_the_parameters_of_plain_conv_unet():
    arch = ct_plan_arch_kwargs()
    with torch.device("meta"):  # parameter counts need no memory or initialisation
        plain = get_network_from_plans("dynamic_network_architectures.architectures.unet.PlainConvUNet",
                                       {**arch, "n_conv_per_stage": [2] * 6}, REQUIRES_IMPORT, 1, 2, allow_init=False)
        student = get_network_from_plans(CLASS_PATH, {**arch, "n_blocks_per_stage": [1] * 6, "aspp_rates": [1, 2, 3]},
                                         REQUIRES_IMPORT, 1, 2, allow_init=False)
    assert isinstance(plain, PlainConvUNet)
    plain_count = sum(p.numel() for p in plain.parameters())
    student_count = sum(p.numel() for p in student.parameters())
    assert student_count <= 0.5 * plain_count


def test_constructor_rejects_impossible_settings():
    with pytest.raises(ValueError, match="features_per_stage"):
        DepthwiseSeparableResidualUNet(**tiny_kwargs(3, features_per_stage=[4, 8, 12]))
    with pytest.raises(ValueError, match="at least one channel"):
        DepthwiseSeparableResidualUNet(**tiny_kwargs(3, features_per_stage=[4, 0, 12, 16]))
