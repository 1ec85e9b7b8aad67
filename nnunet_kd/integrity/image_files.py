"""Read an image, label or mask file only after proving that it is whole and its voxels are numbers.

SimpleITK reads a truncated ``.nii.gz`` without complaint and fills the missing voxels with zeros, so a cut-off
download or an interrupted copy would become a silently wrong label, box mask or score. Before SimpleITK sees a
file, :func:`check_image_file` reads it to its end: a gzip stream must end with its end-of-stream marker and a correct
checksum, and a NIfTI file must hold all the voxels its header announces. :func:`read_image` then refuses NaN and
infinite voxels (nnU-Net's own integrity check can no longer see them once a converter has turned them into 0 HU).
Every problem is an :class:`~nnunet_kd.errors.InputError` that names the file (and the case, when given).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from nnunet_kd.errors import InputError

if TYPE_CHECKING:
    import SimpleITK as sitk

_CHUNK = 1 << 22
_NIFTI_HEADER_BYTES = {348: 1, 540: 2}


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


_FLOAT_DATATYPES = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 and float64


def _nifti_layout(header: bytes) -> tuple[int, int, np.dtype | None] | None:
    """``(voxel data offset, voxel data bytes, float dtype or None)`` from a NIfTI-1 or NIfTI-2 header, or None if it
    is not one."""
    for endian in "<>":
        if len(header) < 4:
            return None
        size = struct.unpack(f"{endian}i", header[:4])[0]
        version = _NIFTI_HEADER_BYTES.get(size)
        if version is None or len(header) < size:
            continue
        if version == 1:
            datatype = struct.unpack(f"{endian}h", header[70:72])[0]
            dims = struct.unpack(f"{endian}8h", header[40:56])
            bitpix = struct.unpack(f"{endian}h", header[72:74])[0]
            offset = int(struct.unpack(f"{endian}f", header[108:112])[0])
        else:
            datatype, bitpix = struct.unpack(f"{endian}2h", header[12:16])
            dims = struct.unpack(f"{endian}8q", header[16:80])
            offset = struct.unpack(f"{endian}q", header[168:176])[0]
        rank = dims[0]
        if not 1 <= rank <= 7 or bitpix <= 0:
            return None
        voxels = int(np.prod([max(int(d), 1) for d in dims[1:rank + 1]], dtype=np.int64))
        float_type = _FLOAT_DATATYPES.get(datatype)
        return max(offset, size), voxels * bitpix // 8, None if float_type is None else np.dtype(endian + float_type)
    return None


def check_image_file(path: str | os.PathLike, what: str | None = None, allow_non_finite: bool = False) -> None:
    """Read ``path`` to its end; raise :class:`InputError` if it is missing, cut off or not a valid gzip stream, or
    (NIfTI) shorter than its header's voxel count needs, or (NIfTI float data) has NaN or infinite voxels.

    The voxel values are checked in the file itself: ITK's NIfTI reader turns NaN into 0 on reading.

    Args:
        path: an image file (``.nii.gz``, ``.nii``, or any other format SimpleITK reads; only gzip and NIfTI are
            checked beyond existence).
        what: names the file in messages, e.g. ``"case lung_001 (label)"``; default: the path.
        allow_non_finite: accept NaN and infinite voxels.
    """
    path = Path(path)
    name = what or str(path)
    if not path.is_file():
        raise InputError(f"{name}: file {path} does not exist")
    is_nifti = path.name.endswith((".nii", ".nii.gz"))
    total, content, layout = 0, bytearray(), None
    try:
        with _open(path) as stream:
            while chunk := stream.read(_CHUNK):
                if is_nifti and (layout is None or layout[2] is not None):
                    content += chunk  # the header, and all of a float image's voxels
                    if layout is None and len(content) >= 540:
                        layout = _nifti_layout(bytes(content[:540]))
                total += len(chunk)
    except EOFError:
        raise InputError(f"{name}: {path} is cut off (the compressed stream ends early); copy or convert it again") \
            from None
    except (OSError, zlib.error) as error:
        raise InputError(f"{name}: {path} is not a readable file ({error})") from None
    if not is_nifti:
        return
    layout = layout or _nifti_layout(bytes(content[:540]))
    if layout is None:
        raise InputError(f"{name}: {path} has no valid NIfTI header")
    offset, data_bytes, float_type = layout
    if total < offset + data_bytes:
        raise InputError(f"{name}: {path} holds {total - offset} bytes of voxel data, its header announces "
                         f"{data_bytes}: the file is cut off")
    if float_type is not None and not allow_non_finite:
        voxels = np.frombuffer(content, dtype=float_type, count=data_bytes // float_type.itemsize, offset=offset)
        bad = int(voxels.size - np.count_nonzero(np.isfinite(voxels)))
        if bad:
            raise InputError(f"{name}: {path} has {bad} NaN or infinite voxel(s)")


def read_image(path: str | os.PathLike, what: str | None = None, allow_non_finite: bool = False) -> sitk.Image:
    """:func:`check_image_file`, then SimpleITK's ``ReadImage``, then (float images) a check for NaN and infinity.

    Returns:
        The SimpleITK image.

    Raises:
        InputError: the file is missing, cut off or unreadable, or has NaN or infinite voxels (naming their count).
    """
    import SimpleITK as sitk

    check_image_file(path, what, allow_non_finite)
    name = what or str(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(f"{name}: SimpleITK cannot read {path}: {str(error).strip().splitlines()[-1]}") from None
    if not allow_non_finite and "float" in image.GetPixelIDTypeAsString():
        array = sitk.GetArrayViewFromImage(image)
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputError(f"{name}: {path} has {bad} NaN or infinite voxel(s)")
    return image
