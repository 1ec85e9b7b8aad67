"""The box channel of box-guided models, on nnU-Net's cascade input path.

nnU-Net feeds a cascaded configuration with a "previous stage segmentation": at training time from
``<folder>/<case>.b2nd`` files in preprocessed geometry, at inference from ``nnUNetv2_predict
-prev_stage_predictions <folder>`` files in raw geometry. It treats that map as a segmentation (nearest/label-aware
resampling and spatial augmentation, so it stays binary), never passes it through intensity augmentation, and
appends it to the image as one-hot channels after augmentation. We use that path for the axial box mask.

This module holds:

- :class:`AxialBoxChannelTransform`: the batchgeneratorsv2 transform that replaces the previous-stage channel of a
  training sample by the boxes of the *augmented* label (optionally perturbed like real annotations, see
  :mod:`nnunet_kd.boxes.augmentation`), removing lesions whose box was dropped from the target;
- :class:`AppendTeacherBoxChannelTransform`: the exact boxes of a distillation student's augmented label, appended to
  its image for a box-guided teacher (split off again before the student);
- :func:`write_preprocessed_box_files`: exact boxes of every preprocessed label, written where the data loader and
  nnU-Net's final validation read them;
- :func:`box_channel_of_labels`: the exact box masks of a batch of labels, as a tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from nnunet_kd.atomic import atomic_path
from nnunet_kd.boxes.augmentation import BoxAugmentation, augment_boxes
from nnunet_kd.boxes.axial_boxes import axial_box_mask, axial_boxes_from_label, label_lesions, rasterize_boxes

BOX_FOLDER_PREFIX = "boxes_"
PREVIOUS_STAGE_NAME = "boxes"


class AxialBoxChannelTransform(BasicTransform):
    """Put the axial boxes of the (augmented) label into a segmentation channel.

    Operates on one sample's ``segmentation`` tensor ``(C, *spatial)`` (int16, ``C >= 2``): channel
    ``label_channel`` is the target, channel ``box_channel`` (the previous-stage channel) is overwritten with the
    box mask (0/1). Must run after all spatial augmentation and after padding (-1) was mapped to background, and
    before ``MoveSegAsOneHotToDataTransform`` moves the box channel into the image.

    Args:
        axial_axis: spatial axis (0-based, excluding the channel axis) that indexes axial slices.
        spacing: voxel size per spatial axis in mm (the configuration's spacing).
        augmentation: perturbation of the exact boxes; ``None`` for exact boxes.
        merge_per_slice: one box per slice around all lesions (the paper's code) instead of one per lesion.
        label_channel, box_channel: channels of the segmentation tensor.
        ignore_label: nnU-Net's ignore label: its voxels are not tumour and get no box (they stay in the target).
    """

    def __init__(
        self,
        axial_axis: int,
        spacing: tuple[float, ...],
        augmentation: BoxAugmentation | None = None,
        merge_per_slice: bool = False,
        label_channel: int = 0,
        box_channel: int = 1,
        ignore_label: int | None = None,
    ):
        super().__init__()
        self.ignore_label = ignore_label
        self.axial_axis = axial_axis
        self.spacing = tuple(float(s) for s in spacing)
        self.augmentation = augmentation
        self.merge_per_slice = merge_per_slice
        self.label_channel = label_channel
        self.box_channel = box_channel

    def get_parameters(self, **data_dict) -> dict:
        return {"seed": int(np.random.randint(0, 2**31 - 1))}  # numpy global RNG: seeded per DA worker by nnU-Net

    def apply(self, data_dict: dict, **params) -> dict:
        # only the segmentation changes (BasicTransform.apply would set unhandled entries such as the image to None)
        data_dict["segmentation"] = self._apply_to_segmentation(data_dict["segmentation"], **params)
        return data_dict

    def _apply_to_segmentation(self, segmentation: torch.Tensor, seed: int) -> torch.Tensor:
        label = tumour_labels(segmentation[self.label_channel].numpy(), self.ignore_label)
        in_plane = [a for a in range(label.ndim) if a != self.axial_axis]
        boxes = axial_boxes_from_label(label, self.axial_axis, self.merge_per_slice)
        if self.augmentation is not None:
            # merged boxes all carry lesion 0: one group, so slice dropping keeps at least one of them
            boxes, dropped = augment_boxes(
                boxes,
                np.random.default_rng(seed),
                (self.spacing[in_plane[0]], self.spacing[in_plane[1]]),
                (label.shape[in_plane[0]], label.shape[in_plane[1]]),
                self.augmentation,
            )
            if dropped:  # a lesion without a box is not to be segmented: remove it from the target
                removed = label > 0 if self.merge_per_slice else np.isin(label_lesions(label)[0], sorted(dropped))
                segmentation[self.label_channel][torch.from_numpy(removed)] = 0
        mask = rasterize_boxes(boxes, label.shape, self.axial_axis)
        segmentation[self.box_channel] = torch.from_numpy(mask.astype(np.int16))
        return segmentation


def tumour_labels(label: np.ndarray, ignore_label: int | None) -> np.ndarray:
    """``label`` with the ignore label's voxels set to background (a copy only when there are any)."""
    if ignore_label is None or not (label == ignore_label).any():
        return label
    return np.where(label == ignore_label, 0, label)


def box_channel_of_labels(labels: torch.Tensor, axial_axis: int, ignore_label: int | None = None) -> torch.Tensor:
    """The exact axial box masks of a batch of label maps, on the host.

    Used where boxes are derived inside a training step: a box-guided teacher's channel when the data-augmentation
    workers did not append it, and the dual-output student's box target.

    Args:
        labels: ``(B, 1, *S)`` label maps, 2 or 3 spatial axes; a 2D patch is one axial slice.
        axial_axis: spatial axis (0-based, within ``S``) that indexes axial slices; unused for 2D patches.
        ignore_label: a label value that is not tumour (nnU-Net's ignore label), or None.

    Returns:
        ``(B, 1, *S)`` 0/1 masks on ``labels``' device, in ``labels``' dtype.
    """
    if labels.ndim not in (4, 5) or labels.shape[1] != 1:
        raise ValueError(f"expected a (B, 1, *spatial) label map with 2 or 3 spatial axes, got {tuple(labels.shape)}")
    values = labels[:, 0].detach().cpu().numpy()
    foreground = values > 0
    if ignore_label is not None:
        foreground &= values != ignore_label
    masks = np.zeros(foreground.shape, dtype=np.uint8)
    for b, sample in enumerate(foreground):
        if not sample.any():
            continue
        masks[b] = axial_box_mask(sample[None], 0)[0] if sample.ndim == 2 else axial_box_mask(sample, axial_axis)
    return torch.from_numpy(masks[:, None]).to(device=labels.device, dtype=labels.dtype)


class AppendTeacherBoxChannelTransform(BasicTransform):
    """Append the exact axial boxes of a training sample's final label to its image, for a box-guided *teacher*.

    The last transform of a distillation student's training pipeline when a teacher needs the box channel: it runs
    in nnU-Net's data-augmentation workers, so the training step neither copies the label to the host nor waits for
    it. The image ``(C, *spatial)`` becomes ``(C + 1, *spatial)`` (0/1 float); the trainer splits the extra channel
    off before the student sees the batch. The boxes are :func:`~nnunet_kd.boxes.axial_boxes.axial_box_mask` of the
    full-resolution label (the first one when deep supervision made the segmentation a list): exactly what the
    teacher would get from the batch's target.

    Args:
        axial_axis: spatial axis (0-based, excluding the channel axis) that indexes axial slices.
        ignore_label: nnU-Net's ignore label: its voxels are not tumour and get no box.
    """

    def __init__(self, axial_axis: int, ignore_label: int | None = None):
        super().__init__()
        self.axial_axis = axial_axis
        self.ignore_label = ignore_label

    def get_parameters(self, **data_dict) -> dict:
        return {}

    def apply(self, data_dict: dict, **params) -> dict:
        segmentation = data_dict["segmentation"]
        label = (segmentation[0] if isinstance(segmentation, list) else segmentation)[0].numpy()
        tumour = tumour_labels(label, self.ignore_label) > 0
        mask = torch.from_numpy(axial_box_mask(tumour, self.axial_axis)).to(data_dict["image"].dtype)
        data_dict["image"] = torch.cat([data_dict["image"], mask[None]])
        return data_dict


def box_folder(preprocessed_dataset_folder: str | os.PathLike, data_identifier: str) -> Path:
    """Where the preprocessed box files of a configuration live: ``<dataset>/boxes_<data_identifier>``."""
    return Path(preprocessed_dataset_folder) / f"{BOX_FOLDER_PREFIX}{data_identifier}"


def write_preprocessed_box_files(
    preprocessed_data_folder: str | os.PathLike, target_folder: str | os.PathLike, axial_axis: int,
    merge_per_slice: bool = False, ignore_label: int | None = None,
) -> int:
    """Write the exact axial boxes of every preprocessed label ``<case>_seg.b2nd`` as ``<target>/<case>.b2nd``.

    The boxes are derived in preprocessed geometry (after nnU-Net's cropping and resampling), so they align with the
    data by construction. Existing files are kept (reruns are cheap); each file is written atomically.

    Returns:
        The number of files written.
    """
    import blosc2
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2

    source, target = Path(preprocessed_data_folder), Path(target_folder)
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for seg_file in sorted(source.glob("*_seg.b2nd")):
        case = seg_file.name[: -len("_seg.b2nd")]
        out = target / f"{case}.b2nd"
        if out.exists():
            continue
        seg = np.asarray(blosc2.open(urlpath=str(seg_file), mode="r")[:])[0]
        boxes = axial_box_mask(tumour_labels(seg, ignore_label) > 0, axial_axis, merge_per_slice)
        with atomic_path(out) as tmp:
            nnUNetDatasetBlosc2.save_seg(boxes, str(tmp)[: -len(".b2nd")])
        written += 1
    return written
