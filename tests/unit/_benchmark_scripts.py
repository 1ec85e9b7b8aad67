"""Import a benchmark script (``benchmarks/...``, not a package) as a module, for testing its functions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark_script(relative_path: str) -> ModuleType:
    """The script ``benchmarks/<relative_path>`` executed as a fresh module."""
    path = BENCHMARKS / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
