"""The one image reader: whole files only, every voxel a number, one message naming the file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_kd.errors import InputError
from nnunet_kd.integrity.image_files import check_image_file, read_image


def write(path, array):
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=str(path).endswith(".gz"))
    return path


@pytest.fixture
def volume():
    return (np.arange(20 * 32 * 32) % 977).astype(np.int16).reshape(20, 32, 32)


def test_a_whole_file_reads_as_simpleitk_reads_it(tmp_path, volume):
    path = write(tmp_path / "case.nii.gz", volume)
    assert np.array_equal(sitk.GetArrayFromImage(read_image(path, "case a")), volume)


def test_a_truncated_gzip_stream_is_refused_although_simpleitk_reads_it(tmp_path, volume):
    path = write(tmp_path / "case.nii.gz", volume)
    data = path.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    assert sitk.ReadImage(str(cut)).GetSize() == (32, 32, 20)  # what made the check necessary: zeros, no error
    with pytest.raises(InputError, match=r"case a: .*cut\.nii\.gz is cut off"):
        read_image(cut, "case a")


def test_an_uncompressed_nifti_shorter_than_its_header_says_is_refused(tmp_path, volume):
    path = write(tmp_path / "case.nii", volume)
    cut = tmp_path / "cut.nii"
    cut.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(InputError, match=f"holds {volume.nbytes - 64} bytes of voxel data, its header announces "
                                         f"{volume.nbytes}"):
        check_image_file(cut)


def test_a_gzip_stream_with_a_wrong_checksum_is_refused(tmp_path, volume):
    path = write(tmp_path / "case.nii.gz", volume)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 of the gzip trailer
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a readable file"):
        read_image(path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_infinite_voxels_are_counted_and_refused(tmp_path, dtype):
    array = np.zeros((4, 5, 6), dtype=dtype)
    array[1, 2, 3], array[0, 0, 0], array[3, 4, 5] = np.nan, np.inf, -np.inf
    path = write(tmp_path / "image.nii.gz", array)
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).all()  # ITK hides them on reading
    with pytest.raises(InputError, match="case b: .* has 3 NaN or infinite voxel"):
        read_image(path, "case b")
    assert read_image(path, allow_non_finite=True).GetSize() == (6, 5, 4)


def test_missing_and_non_image_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz", "case c")
    not_nifti = tmp_path / "text.nii.gz"
    with gzip.open(not_nifti, "wb") as stream:
        stream.write(b"not an image" * 100)
    with pytest.raises(InputError, match="no valid NIfTI header"):
        read_image(not_nifti)
