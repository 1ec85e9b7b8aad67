"""nnunet-kd: an nnU-Net v2 extension for lung tumour segmentation from mixed supervision.

Importing the package is cheap: no torch, no nnU-Net. Public functions live in their modules
(``nnunet_kd.boxes.axial_boxes``, ``nnunet_kd.synthetic.chest_phantom``, ...), the console command is ``nnunet_kd``.
"""

__version__ = "0.2.0"
