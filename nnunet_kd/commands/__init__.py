"""Subcommands of ``nnunet_kd``: one module each (``NAME``, ``HELP``, ``add_arguments``, ``run``); see cli.py."""
