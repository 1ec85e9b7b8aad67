"""The nnunet_kd command: subcommands listed, user errors as one line without traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NNUNET_KD = [sys.executable, "-m", "nnunet_kd.cli"]


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run([*NNUNET_KD, *args], capture_output=True, text=True, env=environment)


def test_help_lists_every_subcommand():
    from nnunet_kd.cli import discover_commands

    result = run("--help")
    assert result.returncode == 0
    for name in discover_commands():
        assert name in result.stdout
    assert {"trainer-dir", "phantoms"} <= set(discover_commands())


def test_trainer_dir_prints_the_lookup_folder():
    from nnunet_kd.trainer_lookup import trainer_dir

    result = run("trainer-dir")
    assert result.returncode == 0 and Path(result.stdout.strip()) == trainer_dir()


def _one_clear_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_wrong_ext_trainer_value_is_one_clear_error(tmp_path):
    line = _one_clear_line(run("trainer-dir", "--check", nnUNet_extTrainer=str(tmp_path)))
    assert "does not contain the nnunet_kd trainer folder" in line and "nnunet_kd trainer-dir" in line


def test_missing_nnunet_variable_is_one_clear_error():
    line = _one_clear_line(run("phantoms", "-d", "977", nnUNet_raw=None))
    assert "nnUNet_raw is not set" in line


def test_impossible_phantom_request_is_one_clear_error_and_writes_nothing(tmp_path):
    line = _one_clear_line(run("phantoms", "-d", "977", "--max-diameter", "400", "-o", str(tmp_path)))
    assert "larger than the lung" in line
    assert list(tmp_path.iterdir()) == []
