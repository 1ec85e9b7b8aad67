"""The student networks' former import path, kept so that existing plans files still build.

``nnunet_kd add-student`` of versions before 0.2 wrote ``nnunet_kd.networks.depthwise_unet.<Class>`` and
``nnunet_kd.networks.dual_output_unet.<Class>`` into plans. nnU-Net resolves a network class name with
``pydoc.locate``, which imports the longest importable prefix (this module) and takes the rest as attributes, so the
old names lead to the classes in :mod:`nnunet_kd.students`. New plans name :mod:`nnunet_kd.students` directly.
"""

from nnunet_kd.students import depthwise_unet, dual_output_unet

__all__ = ["depthwise_unet", "dual_output_unet"]
