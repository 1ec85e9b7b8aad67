"""Run one pipeline command: print it, stream its output, keep a log, fail with the command and the log path.

Each command runs in its own process group. Ctrl-C reaches the pipeline, which then ends the whole group, so that no
worker process of the command (``nnUNetv2_predict`` starts several) outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nnunet_kd.errors import NnunetKdError


class CommandRunner:
    """Runs console scripts of this environment with the pipeline's nnU-Net environment.

    Args:
        env: environment of every command (nnU-Net folders, ``nnUNet_extTrainer``...).
        log_folder: one log file per stage.
        verbose: echo every output line (otherwise only nnU-Net's epoch lines and summaries).
    """

    #: lines worth showing as progress when not verbose
    PROGRESS_MARKERS = ("Epoch ", "Pseudo dice", "Mean Validation Dice", "validation cases Dice", "predicting", "100%",
                        "error", "Error", "wrote", "ready", "kd_seg")

    def __init__(self, env: dict[str, str], log_folder: Path, verbose: bool = False):
        self.env = env
        self.log_folder = log_folder
        self.verbose = verbose
        log_folder.mkdir(parents=True, exist_ok=True)

    def run(self, stage: str, command: Sequence[str], extra_env: dict[str, str] | None = None) -> None:
        """Run ``command`` (first item: a console script of this environment, or any executable)."""
        command = [str(part) for part in command]
        executable = Path(sys.executable).parent / command[0]
        argv = [str(executable) if executable.exists() else command[0], *command[1:]]
        log_file = self.log_folder / f"{stage}.log"
        printable = " ".join(command)
        print(f"[{stage}] running: {printable}", flush=True)
        start = time.time()
        with open(log_file, "a") as log:
            log.write(f"\n$ {printable}\n")
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       env={**self.env, **(extra_env or {})}, bufsize=1, start_new_session=True)
            try:
                for line in process.stdout:
                    log.write(line)
                    if self.verbose or any(m in line for m in self.PROGRESS_MARKERS):
                        print(f"[{stage}]   {line.rstrip()[-160:]}", flush=True)
                returncode = process.wait()
            except KeyboardInterrupt:
                end_process_group(process)
                raise
        if returncode != 0:
            raise NnunetKdError(f"stage {stage!r} failed: '{printable}' exited with {returncode}; see {log_file}")
        print(f"[{stage}] done in {time.time() - start:.0f} s", flush=True)


def end_process_group(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM to every process of ``process``'s group, SIGKILL to what is left after ``grace_seconds``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.time() + grace_seconds
    while time.time() < deadline:  # the workers may outlive the group's leader
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def pipeline_environment(work_dir: Path, use_existing_folders: bool) -> dict[str, str]:
    """The environment of the pipeline's commands: nnU-Net folders under ``work_dir`` (or the user's), the plugin's
    trainer folder in ``nnUNet_extTrainer``, few processes on CPU."""
    from nnunet_kd.trainer_lookup import environment_with_trainer_dir

    env = environment_with_trainer_dir()
    if not use_existing_folders:
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            folder = work_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            env[name] = str(folder)
    env.setdefault("nnUNet_def_n_proc", str(min(2, os.cpu_count() or 1)))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env
