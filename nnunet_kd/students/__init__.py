"""Compact students: their networks, the plans configurations that name them, and what they cost.

- :class:`~nnunet_kd.students.depthwise_unet.DepthwiseSeparableResidualUNet`: "U-NetDw", residual blocks whose
  k×k(×k) convolutions are depthwise-separable, optional ASPP at the bottleneck (:mod:`.separable_blocks`,
  :mod:`.separable_unet_parts`, :mod:`.aspp`);
- :class:`~nnunet_kd.students.dual_output_unet.DualOutputDepthwiseSeparableResidualUNet`: the same with a second
  decoder that predicts the axial box mask during training (the "DO" student); inference returns segmentation only;
- :mod:`.configuration`: ``nnunet_kd add-student``, a plans configuration that inherits a planned one and replaces
  its architecture;
- :mod:`.cost`: parameters and multiply-accumulates of any configuration's network.

The networks follow the dynamic-network-architectures contract nnU-Net relies on (constructor keywords,
``initialize``, ``compute_conv_feature_map_size``, ``decoder.deep_supervision``, ``encoder.stages[i]`` /
``decoder.stages[j]``), so plans name them by their dotted class path. This ``__init__`` imports nothing (the
network modules import torch; the commands import them lazily).
"""
