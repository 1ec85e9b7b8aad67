"""Run real ``nnUNetv2_*`` / ``nnunet_kd`` commands as subprocesses with an isolated nnU-Net environment."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_kd.trainer_lookup import trainer_dir

TEST_TRAINER_DIR = Path(__file__).resolve().parents[1] / "ext_trainers"
BIN = Path(sys.executable).parent


@dataclass
class NnunetEnvironment:
    """nnUNet_raw/preprocessed/results under one temporary root, and the environment for subprocesses."""

    root: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> Path:
        return self.root / "nnUNet_raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "nnUNet_preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "nnUNet_results"

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            nnUNet_raw=str(self.raw),
            nnUNet_preprocessed=str(self.preprocessed),
            nnUNet_results=str(self.results),
            nnUNet_extTrainer=os.pathsep.join([str(trainer_dir()), str(TEST_TRAINER_DIR)]),
            nnUNet_compile="f",
            nnUNet_def_n_proc="1",
            OMP_NUM_THREADS="2",
            PYTHONUNBUFFERED="1",
            MPLBACKEND="Agg",
        )
        env.update(self.extra)
        env.update(overrides)
        return env

    def run(self, *command: str, check: bool = True, timeout: float = 900, **env_overrides: str):
        """Run a console script of this venv (``nnUNetv2_train``, ``nnunet_kd``...) and return the result."""
        executable = BIN / command[0]
        argv = [str(executable if executable.exists() else command[0]), *command[1:]]
        result = subprocess.run(argv, env=self.env(**env_overrides), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {result.returncode}\n--- stdout (tail) ---\n{result.stdout[-4000:]}"
                f"\n--- stderr (tail) ---\n{result.stderr[-4000:]}"
            )
        return result

    def make_dirs(self) -> None:
        for folder in (self.raw, self.preprocessed, self.results):
            folder.mkdir(parents=True, exist_ok=True)
