"""Load nnU-Net checkpoints without running code from them.

``torch.load(weights_only=False)``, which nnU-Net uses, unpickles arbitrary objects: a ``checkpoint_final.pth`` with
a pickle payload runs it. Every checkpoint the plugin opens, a teacher's or a student's own, goes through
:func:`load_checkpoint` first: ``weights_only=True`` with the few non-tensor types nnU-Net's checkpoints hold (NumPy
scalars and dtypes in the training log) allowed by name. A file that passes holds nothing but tensors and plain data,
so nnU-Net may then load it its own way. A cut-off or corrupt file is named in one line.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nnunet_kd.errors import InputError

#: the non-tensor types in nnU-Net checkpoints (numpy scalars and dtypes in the training log)
_SAFE_TYPES = [np.dtype, type(np.float32(0).dtype), type(np.float64(0).dtype), type(np.int64(0).dtype),
               type(np.bool_(0).dtype)]


def _numpy_scalar_reconstructor():
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core to numpy._core
    return multiarray.multiarray.scalar


def load_checkpoint(path: str | os.PathLike, what: str = "checkpoint", map_location: Any = "cpu") -> dict:
    """The checkpoint's contents, loaded with ``weights_only=True``.

    Args:
        path: a ``.pth`` file written by nnU-Net (or by the plugin's trainers).
        what: names the checkpoint in messages, e.g. ``"teacher teacher0, fold 0"``.
        map_location: as for ``torch.load``.

    Raises:
        InputError: the file is missing, cut off or corrupt, or holds objects other than tensors and nnU-Net's plain
            types (it could run code when unpickled; it is not loaded).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals([_numpy_scalar_reconstructor(), *_SAFE_TYPES]):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        lines = str(error).strip().splitlines() or [""]
        detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0])
        raise InputError(f"{what}: checkpoint {path} holds objects other than tensors and plain data, which could run "
                         f"code when loaded; refusing to load it ({detail.strip()})") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"{what}: checkpoint {path} is cut off or corrupt ({type(error).__name__}: "
                         f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no details'})") from None
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise InputError(f"{what}: {path} is not an nnU-Net checkpoint (no network_weights)")
    return checkpoint


def network_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The checkpoint's network weights with ``_orig_mod.`` (torch.compile) and ``module.`` (DDP) prefixes removed."""
    weights = checkpoint["network_weights"]
    return {k.removeprefix("_orig_mod.").removeprefix("module."): v for k, v in weights.items()}
