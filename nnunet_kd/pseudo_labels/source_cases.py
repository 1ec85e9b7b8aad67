"""The cases that go into a pseudo-labelled dataset: strong cases (ground truth) and weak cases (boxes only).

Output case names are ``<prefix>_<source case>`` (default prefixes ``strong`` and ``weak``), so names stay unique
when both sources use the same case names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_kd.boxes.inputs import check_box_masks
from nnunet_kd.errors import ConfigurationError, InputError
from nnunet_kd.integrity.image_files import check_image_file
from nnunet_kd.paths import nnunet_folder, read_dataset_json, resolve_dataset_name

KIND_STRONG, KIND_PSEUDO = "strong", "pseudo"


@dataclass(frozen=True)
class RawDataset:
    """A raw nnU-Net dataset folder and the parts of its ``dataset.json`` that matter here."""

    folder: Path
    channel_names: dict[str, str]
    labels: dict[str, int]
    file_ending: str

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class SourceCase:
    """One case of the output dataset and the files it is made from."""

    name: str
    source_case: str
    source_dataset: str
    kind: str
    images: tuple[Path, ...]
    label: Path | None
    boxes: Path | None


def locate_raw_dataset(dataset: str | os.PathLike) -> Path:
    """A dataset folder given as a path, or as an id / name under ``$nnUNet_raw``.

    Raises:
        ConfigurationError: no such dataset.
    """
    path = Path(dataset)
    if path.is_dir():
        return path
    folder = nnunet_folder("nnUNet_raw") / resolve_dataset_name(str(dataset))
    if not folder.is_dir():
        raise ConfigurationError(f"dataset {dataset!r} has no raw folder {folder}")
    return folder


def read_raw_dataset(folder: str | os.PathLike) -> RawDataset:
    """Read ``dataset.json`` of a raw dataset.

    Raises:
        InputError: missing or unreadable ``dataset.json``.
    """
    folder = Path(folder)
    meta = read_dataset_json(folder)
    try:
        return RawDataset(folder, dict(meta["channel_names"]), dict(meta["labels"]), meta["file_ending"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{folder / 'dataset.json'} lacks what nnU-Net needs ({type(error).__name__}: {error})") \
            from None


def _channel_files(images: Path, case: str, num_channels: int, file_ending: str) -> tuple[Path, ...]:
    files = tuple(images / f"{case}_{c:04d}{file_ending}" for c in range(num_channels))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise InputError(f"case {case} in {images}: missing channel file(s) {', '.join(missing)}")
    return files


def _cases(images: Path, file_ending: str) -> list[str]:
    pattern = re.compile(rf"^(.+)_0000{re.escape(file_ending)}$")
    return sorted(m.group(1) for p in images.iterdir() if (m := pattern.match(p.name)))


def weak_cases(dataset: RawDataset, boxes: Path | None, prefix: str = "weak") -> list[SourceCase]:
    """Every ``imagesTr`` case of a weak dataset with its box mask (``boxes`` = ``None``: no boxes at all).

    Raises:
        InputError: no images, a case without a box file, or a box mask that does not fit its image.
    """
    images = dataset.folder / "imagesTr"
    if not images.is_dir() or not (cases := _cases(images, dataset.file_ending)):
        raise InputError(f"weak dataset {dataset.folder}: no images <case>_0000{dataset.file_ending} in imagesTr")
    if boxes is not None:
        problems = check_box_masks(images, boxes, dataset.file_ending)
        if problems:
            listing = "; ".join(str(p) for p in problems[:10])
            raise InputError(f"weak dataset {dataset.name}: {len(problems)} case(s) without a usable box mask: "
                             f"{listing}")
    n = len(dataset.channel_names)
    return [SourceCase(f"{prefix}_{c}", c, dataset.name, KIND_PSEUDO, _channel_files(images, c, n, dataset.file_ending),
                       None, None if boxes is None else boxes / f"{c}{dataset.file_ending}") for c in cases]


def strong_cases(dataset: RawDataset, prefix: str = "strong") -> list[SourceCase]:
    """Every ``imagesTr`` case of a strong dataset with its label (and its box mask from ``boxesTr`` if present).

    Raises:
        InputError: no images, or a case without a label file or with a cut-off one (labels are small: all are read
            to their end here, before the export writes anything).
    """
    images, labels, boxes = (dataset.folder / s for s in ("imagesTr", "labelsTr", "boxesTr"))
    if not images.is_dir() or not (cases := _cases(images, dataset.file_ending)):
        raise InputError(f"strong dataset {dataset.folder}: no images <case>_0000{dataset.file_ending} in imagesTr")
    missing = [c for c in cases if not (labels / f"{c}{dataset.file_ending}").is_file()]
    if missing:
        raise InputError(f"strong dataset {dataset.name}: no label in labelsTr for {', '.join(missing[:10])}")
    n = len(dataset.channel_names)
    result = []
    for c in cases:
        box, label = boxes / f"{c}{dataset.file_ending}", labels / f"{c}{dataset.file_ending}"
        check_image_file(label, f"strong case {c}: label")
        files = _channel_files(images, c, n, dataset.file_ending)
        result.append(SourceCase(f"{prefix}_{c}", c, dataset.name, KIND_STRONG, files, label,
                                 box if box.is_file() else None))
    return result


def check_unique(cases: list[SourceCase]) -> None:
    """Raise :class:`ConfigurationError` if two cases would get the same output name."""
    seen: dict[str, SourceCase] = {}
    for case in cases:
        if case.name in seen:
            raise ConfigurationError(f"case name {case.name} would come from both {seen[case.name].source_dataset} and "
                                     f"{case.source_dataset}; use different --strong-prefix / --weak-prefix")
        seen[case.name] = case
