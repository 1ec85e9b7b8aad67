"""The aggregation over seeds of ``benchmarks/studies/bench_results.py`` on two hand-made ``summary.json`` dicts."""

from __future__ import annotations

import pytest
from _benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def bench():
    return load_benchmark_script("studies/bench_results.py")


def summary(models: dict[str, dict[str, float | None]]) -> dict:
    """A ``summary.json`` as ``nnunet_kd evaluate`` writes it (only the keys the aggregation reads)."""
    return {"models": {model: {"all cases": {"metrics": {m: {"mean": v, "std": None, "n": 1, "n_missing": 0}
                                                         for m, v in metrics.items()}}, "strong": {}}
                       for model, metrics in models.items()}}


def test_mean_and_sample_std_over_seeds_with_undefined_values_left_out(bench):
    summaries = {
        0: summary({"baseline": {"dice": 0.6, "dsc_tp": 0.7, "object_f1": 0.5, "hd95_mm": 10.0},
                    "MKD student": {"dice": 0.8, "dsc_tp": None, "object_f1": 1.0, "hd95_mm": None}}),
        1: summary({"baseline": {"dice": 0.8, "dsc_tp": 0.9, "object_f1": 0.5, "hd95_mm": 20.0},
                    "MKD student": {"dice": 0.9, "dsc_tp": 0.95, "object_f1": 1.0, "hd95_mm": None}}),
    }
    costs = {0: {"baseline": {"params": 1000.0, "inference s/case": 2.0}, "MKD student": {"params": 500.0}},
             1: {"baseline": {"params": 1000.0, "inference s/case": 4.0}, "MKD student": {"params": 500.0}}}
    table = bench.aggregate(summaries, costs)

    assert list(table) == ["baseline", "MKD student"]
    dice = table["baseline"]["dice"]
    assert dice["mean"] == pytest.approx(0.7) and dice["std"] == pytest.approx(0.1414213562)
    assert (dice["n"], dice["n_seeds"], dice["values"]) == (2, 2, {0: 0.6, 1: 0.8})
    assert table["baseline"]["object_f1"]["std"] == 0.0
    assert table["baseline"]["inference s/case"]["mean"] == pytest.approx(3.0)
    assert table["baseline"]["params"]["mean"] == 1000.0
    tp = table["MKD student"]["dsc_tp"]
    assert (tp["mean"], tp["std"], tp["n"], tp["n_seeds"]) == (0.95, None, 1, 2)
    hd = table["MKD student"]["hd95_mm"]
    assert (hd["mean"], hd["n"]) == (None, 0)
    assert table["MKD student"]["inference s/case"]["n"] == 0

    row_baseline, row_mkd = bench.markdown_table(table).splitlines()[2:]
    assert row_baseline == "| baseline | 70.00 ± 14.14 | 80.00 ± 14.14 | 50.00 ± 0.00 | 15.00 ± 7.07 | 1 k | 3.00 |"
    assert row_mkd == "| MKD student | 85.00 ± 7.07 | 95.00 (n=1/2) | 100.00 ± 0.00 | n/a (n=0/2) | 500 | – |"


def test_a_model_missing_from_a_seed_counts_that_seed_as_missing(bench):
    summaries = {0: summary({"a": {"dice": 0.5, "dsc_tp": 0.5, "object_f1": 0.5, "hd95_mm": 1.0}}),
                 1: summary({"b": {"dice": 0.5, "dsc_tp": 0.5, "object_f1": 0.5, "hd95_mm": 1.0}})}
    table = bench.aggregate(summaries)
    assert list(table) == ["a", "b"]
    assert (table["a"]["dice"]["n"], table["a"]["dice"]["n_seeds"]) == (1, 2)
    assert bench.format_cell(table["b"]["dice"], "dice") == "50.00 (n=1/2)"
