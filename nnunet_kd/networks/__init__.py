"""Compact student networks for nnU-Net plans (referenced from a plans file by their dotted class path).

- :class:`nnunet_kd.networks.depthwise_unet.DepthwiseSeparableResidualUNet`: "U-NetDw", residual blocks whose
  k×k(×k) convolutions are depthwise-separable, optional ASPP at the bottleneck.
- :class:`nnunet_kd.networks.dual_output_unet.DualOutputDepthwiseSeparableResidualUNet`: the same with a second
  decoder that predicts the axial box mask during training (the "DO" student); inference returns segmentation only.

Both follow the dynamic-network-architectures contract nnU-Net relies on (constructor keywords, ``initialize``,
``compute_conv_feature_map_size``, ``decoder.deep_supervision``, ``encoder.stages[i]`` / ``decoder.stages[j]``).
The modules import torch (this __init__ does not); cheap code paths such as the commands import them lazily.
"""
