"""Converters from public lung CT datasets to nnU-Net raw datasets (installed as ``nnunet_kd.dataset_conversion``).

One module per dataset, each with a pure ``convert(...)`` function; the ``nnunet_kd`` subcommands are thin
wrappers around them.
"""
