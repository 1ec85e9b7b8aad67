"""Shared test settings: nnU-Net runs on CPU with few processes and no compilation."""

from __future__ import annotations

import os

# nnU-Net reads these at import time; set them before any test imports nnunetv2.
os.environ.setdefault("nnUNet_compile", "f")
os.environ.setdefault("nnUNet_def_n_proc", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
