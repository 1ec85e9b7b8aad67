"""Tumour-size-balanced sampling: volumes, cache, bins, weights, repetitions and the trainer mixin."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from nnunet_kd.size_balanced_sampling import (
    DEFAULT_BIN_EDGES_ML,
    NO_TUMOUR_BIN,
    cached_tumour_volumes_ml,
    repeated_identifiers,
    repetition_counts,
    sampling_weights,
    tumour_volumes_ml,
    volume_bins,
    volume_cache_path,
)
from nnunet_kd.trainers.size_balanced import TumourSizeBalancedSamplingMixin

SPACING = (2.0, 1.0, 0.5)  # mm -> 1 mm^3 per voxel = 0.001 ml


def seg_with(foreground: int, outside: int = 0, label: int = 1, size: int = 4000) -> np.ndarray:
    """``(1, 10, 20, 20)`` nnU-Net-style seg: ``foreground`` voxels of ``label``, ``outside`` voxels of -1."""
    flat = np.zeros(size, dtype=np.int8)
    flat[:foreground] = label
    flat[size - outside:] = -1
    return flat.reshape(1, 10, 20, 20)


class FakeDataset:
    """Stands in for nnUNetDatasetBlosc2/Numpy: ``load_case`` returns (data, seg, seg_prev, properties)."""

    def __init__(self, segs: dict[str, np.ndarray]):
        self.segs = segs
        self.identifiers = sorted(segs)
        self.loaded: list[str] = []

    def load_case(self, identifier: str):
        self.loaded.append(identifier)
        return np.zeros_like(self.segs[identifier], dtype=np.float32), self.segs[identifier], None, {}


# ---------------------------------------------------------------- volumes


def test_volume_counts_positive_labels_excludes_minus_one_and_applies_spacing():
    dataset = FakeDataset({"a": seg_with(1500, outside=2000), "b": seg_with(0, outside=3000),
                           "c": np.concatenate([seg_with(200, label=1), seg_with(300, label=2)], axis=1)})
    volumes = tumour_volumes_ml(dataset, ["a", "b", "c"], SPACING)
    assert volumes == pytest.approx({"a": 1.5, "b": 0.0, "c": 0.5})  # 1500 voxels * 1 mm^3; labels 1 and 2 count
    assert tumour_volumes_ml(dataset, ["a"], (2.0, 2.0, 2.0)) == pytest.approx({"a": 12.0})  # 1500 * 8 mm^3


def test_volume_excludes_the_ignore_label():
    dataset = FakeDataset({"a": np.concatenate([seg_with(200, label=1), seg_with(300, label=2)], axis=1)})
    assert tumour_volumes_ml(dataset, ["a"], SPACING, ignore_label=2) == pytest.approx({"a": 0.2})


def test_volume_rejects_non_positive_spacing():
    with pytest.raises(ValueError, match="spacing"):
        tumour_volumes_ml(FakeDataset({"a": seg_with(1)}), ["a"], (1.0, 0.0, 1.0))


# ---------------------------------------------------------------- cache


def test_cache_is_written_then_reused_without_loading_cases(tmp_path):
    cache = volume_cache_path(tmp_path, "nnUNetPlans_3d_fullres")
    assert cache == tmp_path / "tumour_volumes_nnUNetPlans_3d_fullres.json"
    dataset = FakeDataset({"a": seg_with(1000), "b": seg_with(3000)})
    first = cached_tumour_volumes_ml(dataset, ["a", "b"], SPACING, cache)
    assert sorted(dataset.loaded) == ["a", "b"] and first == pytest.approx({"a": 1.0, "b": 3.0})
    assert json.loads(cache.read_text())["volumes_ml"] == pytest.approx({"a": 1.0, "b": 3.0})
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary file left behind

    dataset.loaded.clear()
    inode = cache.stat().st_ino
    again = cached_tumour_volumes_ml(dataset, ["b", "a"], SPACING, cache)
    assert dataset.loaded == [] and again == first
    assert cache.stat().st_ino == inode  # not rewritten (an atomic rewrite replaces the file)
    subset = cached_tumour_volumes_ml(dataset, ["b"], SPACING, cache)
    assert dataset.loaded == [] and subset == pytest.approx({"b": 3.0})


def test_cache_values_are_used_as_stored(tmp_path):
    cache = tmp_path / "volumes.json"
    cached_tumour_volumes_ml(FakeDataset({"a": seg_with(1000)}), ["a"], SPACING, cache)
    stored = json.loads(cache.read_text())
    stored["volumes_ml"]["a"] = 42.0
    cache.write_text(json.dumps(stored))
    assert cached_tumour_volumes_ml(FakeDataset({"a": seg_with(1000)}), ["a"], SPACING, cache) == {"a": 42.0}


def test_missing_identifier_is_computed_and_added_keeping_other_entries(tmp_path):
    cache = tmp_path / "volumes.json"
    dataset = FakeDataset({"a": seg_with(1000), "b": seg_with(3000), "c": seg_with(500)})
    cached_tumour_volumes_ml(dataset, ["a", "b"], SPACING, cache)
    dataset.loaded.clear()
    volumes = cached_tumour_volumes_ml(dataset, ["a", "c"], SPACING, cache)
    assert dataset.loaded == ["c"]
    assert volumes == pytest.approx({"a": 1.0, "c": 0.5})
    assert json.loads(cache.read_text())["volumes_ml"] == pytest.approx({"a": 1.0, "b": 3.0, "c": 0.5})


@pytest.mark.parametrize("change", [{"spacing_zyx": (1.0, 1.0, 1.0)}, {"ignore_label": 2},
                                    {"fingerprint": {"data_folder_mtime_ns": 2}}])
def test_cache_is_recomputed_when_spacing_ignore_label_or_fingerprint_change(tmp_path, change):
    cache = tmp_path / "volumes.json"
    dataset = FakeDataset({"a": seg_with(1000), "b": seg_with(3000)})
    base = {"spacing_zyx": SPACING, "ignore_label": None, "fingerprint": {"data_folder_mtime_ns": 1}}
    cached_tumour_volumes_ml(dataset, ["a", "b"], cache_file=cache, **base)
    dataset.loaded.clear()
    cached_tumour_volumes_ml(dataset, ["a", "b"], cache_file=cache, **base)
    assert dataset.loaded == []
    cached_tumour_volumes_ml(dataset, ["a", "b"], cache_file=cache, **{**base, **change})
    assert sorted(dataset.loaded) == ["a", "b"]


def test_unreadable_cache_is_recomputed(tmp_path):
    cache = tmp_path / "volumes.json"
    cache.write_text("{not json")
    dataset = FakeDataset({"a": seg_with(1000)})
    assert cached_tumour_volumes_ml(dataset, ["a"], SPACING, cache) == pytest.approx({"a": 1.0})
    assert dataset.loaded == ["a"]


# ---------------------------------------------------------------- bins, weights, repetitions


def test_default_edges_are_sphere_volumes_of_2_and_4_cm():
    assert DEFAULT_BIN_EDGES_ML == pytest.approx((4.19, 33.51), abs=0.02)


def test_bins_by_edges_with_no_tumour_bin():
    volumes = {"none": 0.0, "tiny": 0.01, "small": 4.9, "edge": 5.0, "medium": 29.0, "large": 30.0, "huge": 500.0}
    assert volume_bins(volumes, (5.0, 30.0)) == {"none": NO_TUMOUR_BIN, "tiny": 1, "small": 1, "edge": 2,
                                                 "medium": 2, "large": 3, "huge": 3}


@pytest.mark.parametrize("edges", [(30.0, 5.0), (5.0, 5.0), (0.0, 5.0), (-1.0,)])
def test_bins_reject_bad_edges(edges):
    with pytest.raises(ValueError, match="edges"):
        volume_bins({"a": 1.0}, edges)


def test_three_small_and_one_large_case_large_gets_three_times_the_weight():
    volumes = {"s1": 1.0, "s2": 2.0, "s3": 3.0, "l1": 100.0}
    weights = sampling_weights(volume_bins(volumes, (5.0, 30.0)))
    assert weights == pytest.approx({"s1": 1 / 6, "s2": 1 / 6, "s3": 1 / 6, "l1": 1 / 2})
    assert sum(weights.values()) == pytest.approx(1.0)
    assert repetition_counts(weights) == {"s1": 1, "s2": 1, "s3": 1, "l1": 3}
    assert repeated_identifiers(weights) == ["l1", "l1", "l1", "s1", "s2", "s3"]


def test_no_tumour_cases_form_their_own_bin():
    bins = volume_bins({"n1": 0.0, "n2": 0.0, "n3": 0.0, "n4": 0.0, "s1": 1.0, "s2": 2.0, "m1": 10.0},
                       (5.0, 30.0))
    weights = sampling_weights(bins)
    # three non-empty bins, 1/3 each: 4 tumour-free cases share 1/3, 2 small share 1/3, the medium case has 1/3
    assert weights == pytest.approx({"n1": 1 / 12, "n2": 1 / 12, "n3": 1 / 12, "n4": 1 / 12,
                                     "s1": 1 / 6, "s2": 1 / 6, "m1": 1 / 3})
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) > 0
    assert repetition_counts(weights) == {"n1": 1, "n2": 1, "n3": 1, "n4": 1, "s1": 2, "s2": 2, "m1": 4}


def test_one_bin_means_uniform_weights_and_no_repetition():
    weights = sampling_weights({"a": 2, "b": 2, "c": 2})
    assert weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert repeated_identifiers(weights) == ["a", "b", "c"]


def test_repetitions_round_to_the_nearest_integer_ratio_and_are_capped():
    # bins of 10 and 3 cases: ratio 10/3 = 3.33 -> 3 repetitions each for the rare cases
    bins = {**{f"c{i:02d}": 1 for i in range(10)}, "r1": 2, "r2": 2, "r3": 2}
    counts = repetition_counts(sampling_weights(bins))
    assert {counts[k] for k in bins if k.startswith("c")} == {1} and [counts[f"r{i}"] for i in (1, 2, 3)] == [3] * 3
    # one rare case against 50 common ones: ratio 50, capped
    bins = {**{f"c{i:02d}": 1 for i in range(50)}, "rare": 3}
    assert repetition_counts(sampling_weights(bins), max_repeats=10)["rare"] == 10
    assert repetition_counts(sampling_weights(bins), max_repeats=100)["rare"] == 50
    assert repetition_counts({"a": 0.2, "b": 0.5}) == {"a": 1, "b": 3}  # 2.5 rounds up


def test_repeated_identifiers_are_deterministic_and_sorted():
    weights = {"b": 0.5, "a": 0.25, "c": 0.25}
    assert repeated_identifiers(weights) == repeated_identifiers(dict(reversed(list(weights.items()))))
    assert repeated_identifiers(weights) == ["a", "b", "b", "c"]


@pytest.mark.parametrize("bad", [{}, {"a": 0.0}, {"a": -1.0}])
def test_repetitions_reject_empty_or_non_positive_weights(bad):
    with pytest.raises(ValueError):
        repetition_counts(bad)


def test_empty_bins_are_rejected():
    with pytest.raises(ValueError):
        sampling_weights({})


# ---------------------------------------------------------------- trainer mixin


class FakeTrainer:
    """The parts of nnUNetTrainer that the mixin uses (no real trainer: that needs plans and preprocessed data)."""

    def __init__(self, folder, datasets):
        self.preprocessed_dataset_folder_base = str(folder)
        self.preprocessed_dataset_folder = str(folder / "nnUNetPlans_3d_fullres")
        (folder / "nnUNetPlans_3d_fullres").mkdir(exist_ok=True)
        self.configuration_manager = SimpleNamespace(spacing=[1.0, 1.0, 1.0], data_identifier="nnUNetPlans_3d_fullres")
        self.label_manager = SimpleNamespace(ignore_label=None)
        self.datasets = datasets
        self.log: list[str] = []

    def get_tr_and_val_datasets(self):
        return self.datasets

    def print_to_log_file(self, *args, **kwargs):
        self.log.append(" ".join(str(a) for a in args))


class SizeBalancedFake(TumourSizeBalancedSamplingMixin, FakeTrainer):
    tumour_volume_bin_edges_ml = (5.0, 30.0)


def test_mixin_repeats_training_identifiers_and_leaves_validation_alone(tmp_path):
    # 3 small cases (1-3 ml) and one large case (100 ml) at 1 mm^3 per voxel
    train = FakeDataset({"s1": seg_with(1000), "s2": seg_with(2000), "s3": seg_with(3000),
                         "l1": np.ones((1, 10, 100, 100), dtype=np.int8)})
    validation = FakeDataset({"v1": seg_with(100), "v2": seg_with(200)})
    trainer = SizeBalancedFake(tmp_path, (train, validation))
    dataset_tr, dataset_val = trainer.get_tr_and_val_datasets()
    assert dataset_tr is train and dataset_val is validation
    assert dataset_tr.identifiers == ["l1", "l1", "l1", "s1", "s2", "s3"]
    assert Counter(np.random.default_rng(0).choice(dataset_tr.identifiers, 6000))["l1"] == pytest.approx(3000, rel=0.05)
    assert validation.identifiers == ["v1", "v2"] and validation.loaded == []
    assert (tmp_path / "tumour_volumes_nnUNetPlans_3d_fullres.json").is_file()
    assert any("l1: 100.00 ml, bin 3, weight 0.5000, repeats 3" in line for line in trainer.log)
    assert any("bin 1: 3 cases" in line for line in trainer.log)


def test_mixin_uses_the_cache_on_the_second_run(tmp_path):
    train = FakeDataset({"s1": seg_with(1000), "l1": seg_with(4000)})
    trainer = SizeBalancedFake(tmp_path, (train, FakeDataset({})))
    trainer.get_tr_and_val_datasets()
    train.identifiers, train.loaded = ["l1", "s1"], []
    SizeBalancedFake(tmp_path, (train, FakeDataset({}))).get_tr_and_val_datasets()
    assert train.loaded == []


def test_shipped_size_balanced_trainers_combine_the_mixin_with_their_parent():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    import nnunet_kd.trainers as trainers

    for name, parent in (("nnUNetTrainerSizeBalanced", nnUNetTrainer),
                         ("nnUNetTrainerKDSizeBalanced", trainers.nnUNetTrainerKD),
                         ("nnUNetTrainerMKDSizeBalanced", trainers.nnUNetTrainerMKD)):
        cls = getattr(trainers, name)
        assert name in trainers.__all__
        assert cls.__mro__[1] is TumourSizeBalancedSamplingMixin and issubclass(cls, parent)
        assert cls.get_tr_and_val_datasets is TumourSizeBalancedSamplingMixin.get_tr_and_val_datasets
