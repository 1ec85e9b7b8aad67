"""Tools of ``benchmarks/timing/bench_kd_iteration.py`` and of the GPU check ``gpu/gpu_iteration_check.sh``."""

from __future__ import annotations

import re

import pytest
import torch
from _benchmark_scripts import BENCHMARKS, load_benchmark_script

GPU_CHECK = (BENCHMARKS / "gpu" / "gpu_iteration_check.sh").read_text()


@pytest.fixture(scope="module")
def bench():
    return load_benchmark_script("timing/bench_kd_iteration.py")


def test_per_round_ratio_quartiles_pair_each_round_with_its_own_plain_step(bench):
    times, plain = [2.0, 3.0, 6.0, 2.5, 4.0], [1.0, 2.0, 3.0, 1.0, 2.0]  # ratios 2, 1.5, 2, 2.5, 2
    assert bench.round_ratio_quartiles(times, plain) == pytest.approx([2.0, 2.0, 2.0])
    assert bench.round_ratio_quartiles([3.0, 1.0, 2.0, 4.0], [1.0] * 4) == pytest.approx([1.75, 2.5, 3.25])
    assert bench.round_ratio_quartiles([3.0], [2.0]) == [1.5, 1.5, 1.5]


def test_step_peak_counts_what_a_step_holds_at_once_beyond_what_was_allocated_before(bench):
    allocated_before = torch.zeros(4 * 2**20 // 4)  # 4 MiB, alive during the step but allocated before it

    def step():
        first = torch.ones(2 * 2**20 // 4)  # 2 MiB
        second = torch.ones(6 * 2**20 // 4)  # 6 MiB: 8 MiB held at once
        del first, second
        third = torch.ones(5 * 2**20 // 4)  # 5 MiB after both were freed: below the peak
        del third

    assert 8.0 <= bench.step_peak_mib(step) < 8.1
    del allocated_before


def test_the_gpu_check_names_known_variants(bench):
    commands = GPU_CHECK.replace("\\\n", " ").splitlines()  # continuation lines joined
    variants = [name for line in commands if "--variants" in line
                for name in re.findall(r'"([^"$]+)"', line.split("--variants", 1)[1])]
    assert len(variants) >= 8 and set(variants) <= set(bench.VARIANTS)
