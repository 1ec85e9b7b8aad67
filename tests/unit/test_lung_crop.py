"""Lung crop: the classical mask on phantoms, crops that keep juxtapleural tumours, offline lungmask handling."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_kd.dataset_conversion.lung_crop import (
    LungCropSettings,
    apply_crop,
    classical_lung_mask,
    crop_bounds,
    find_r231_weights,
    lung_crop,
    lung_mask,
    lung_side_crops,
    split_sides,
)
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.synthetic.chest_phantom import PhantomConfig, make_phantom

SPACING = (6.0, 6.0, 6.0)


def _image(seed: int, placement: tuple[float, float, float]):
    config = PhantomConfig(shape_zyx=(40, 64, 64), spacing_xyz=SPACING, vessels_per_lung=2, tumours_per_case=(2, 2),
                           placement_probabilities=placement)
    phantom = make_phantom(config, rng=seed)
    image = sitk.GetImageFromArray(phantom.image)
    image.SetSpacing(SPACING)
    image.SetOrigin((-190.0, -190.0, -120.0))
    return phantom, image


def test_classical_mask_matches_phantom_lungs():
    phantom, _ = _image(0, (1.0, 0.0, 0.0))
    mask = classical_lung_mask(phantom.image, SPACING[::-1])
    truth = phantom.lung_mask > 0
    dice = 2 * np.sum((mask > 0) & truth) / (mask.sum() + truth.sum())
    assert dice > 0.85


@pytest.mark.parametrize("seed", [1, 2])
def test_crop_keeps_every_juxtapleural_tumour_voxel(seed):
    phantom, image = _image(seed, (0.0, 1.0, 0.0))
    result = lung_crop(image, LungCropSettings(method="classical", margin_mm=10.0))
    assert result is not None and result.method == "classical"
    outside_lung = np.sum((phantom.label > 0) & ~(classical_lung_mask(phantom.image, SPACING[::-1]) > 0))
    assert outside_lung > 0  # the tumours do lie outside the lung mask: a hard mask would lose them
    cropped_label = sitk.GetArrayFromImage(apply_crop(sitk.GetImageFromArray(phantom.label), result.bounds))
    assert cropped_label.sum() == phantom.label.sum()
    cropped = apply_crop(image, result.bounds)
    assert np.prod(cropped.GetSize()) < np.prod(image.GetSize())
    # world positions are kept: the cropped image's first voxel is the original voxel at the crop start
    (z0, _), (y0, _), (x0, _) = result.bounds
    assert cropped.GetOrigin() == pytest.approx(image.TransformIndexToPhysicalPoint((x0, y0, z0)))
    first_row = phantom.image[z0, y0, x0 : x0 + cropped.GetSize()[0]]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(cropped)[0, 0], first_row)


def test_crop_bounds_margin_in_mm_and_clipping():
    mask = np.zeros((10, 20, 20), np.uint8)
    mask[4:6, 8:10, 2:4] = 1
    bounds = crop_bounds(mask, (2.0, 1.0, 1.0), margin_mm=3.0)
    assert bounds == ((2, 8), (5, 13), (0, 7))
    assert crop_bounds(np.zeros((3, 3, 3)), (1, 1, 1), 5.0) is None


def test_lungmask_without_weights_says_so_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert find_r231_weights() is None
    _, image = _image(0, (1.0, 0.0, 0.0))
    with pytest.raises(ConfigurationError, match="no download is attempted"):
        lung_mask(image, LungCropSettings(method="lungmask"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        lung_mask(image, LungCropSettings(method="lungmask", lungmask_weights=str(tmp_path / "missing.pth")))
    _, method = lung_mask(image, LungCropSettings(method="auto"))
    assert method == "classical"


def test_cached_weights_file_is_found(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")  # our lookup follows torch's rule
    weights = tmp_path / "hub" / "checkpoints" / "unet_r231-d5d2fc3d.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"x")
    assert find_r231_weights() == weights


def test_bad_settings_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        LungCropSettings(method="magic")
    with pytest.raises(ConfigurationError):
        LungCropSettings(margin_mm=-1)


def test_lungmask_runs_from_a_weights_file(tmp_path):
    """Plumbing only: an R231-shaped network with random weights, loaded from a file (no network access)."""
    import torch
    from lungmask.resunet import UNet

    torch.manual_seed(0)
    network = UNet(n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True, residual=False)
    weights = tmp_path / "r231.pth"
    torch.save(network.state_dict(), weights)
    image = sitk.GetImageFromArray(np.full((1, 48, 48), -800, np.int16))
    image.SetSpacing((6.0, 6.0, 6.0))
    mask, method = lung_mask(image, LungCropSettings(method="lungmask", lungmask_weights=str(weights)))
    assert method == "lungmask-R231"
    assert mask.shape == (1, 48, 48) and set(np.unique(mask)) <= {0, 1}


def test_split_sides_follows_patient_x():
    mask = np.zeros((4, 10, 20), np.uint8)
    mask[:, 2:8, 1:7] = 1  # low columns
    mask[:, 2:8, 12:19] = 1  # high columns
    increasing = np.arange(20, dtype=float)  # identity direction: column → +x (patient left)
    labels = split_sides(mask, increasing)
    assert set(np.unique(labels[:, 2:8, 1:7])) == {1} and set(np.unique(labels[:, 2:8, 12:19])) == {2}
    flipped = split_sides(mask, -increasing)  # direction -1: low columns are the patient's left
    assert set(np.unique(flipped[:, 2:8, 1:7])) == {2} and set(np.unique(flipped[:, 2:8, 12:19])) == {1}
    merged = mask.copy()
    merged[:, 4:6, 7:12] = 1  # one blob: split at the mean x
    labels = split_sides(merged, increasing)
    assert labels[0, 4, 2] == 1 and labels[0, 4, 17] == 2 and np.all((labels > 0) == (merged > 0))


def test_side_crops_each_hold_their_lung():
    phantom, image = _image(3, (0.0, 1.0, 0.0))
    crops = lung_side_crops(image, LungCropSettings(method="classical", margin_mm=10.0))
    assert [c.side for c in crops] == ["right", "left"]
    components, count = ndimage.label(phantom.lung_mask > 0)
    assert count == 2
    mean_column = {c: np.nonzero(components == c)[2].mean() for c in (1, 2)}
    right = min(mean_column, key=mean_column.get)  # LPS, identity direction: the right lung has the lower x
    for crop, lung in zip(crops, (right, 3 - right), strict=True):
        z, y, x = np.nonzero(components == lung)
        (z0, z1), (y0, y1), (x0, x1) = crop.bounds
        inside = (z >= z0) & (z < z1) & (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
        assert inside.mean() > 0.99, crop.side
    assert crops[0].bounds[2][1] < crops[1].bounds[2][1]
