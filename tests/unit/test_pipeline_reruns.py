"""Pipeline reruns: a work folder keeps its options, a training counts as done only when it really finished, and
Ctrl-C ends a command's whole process group."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from nnunet_kd.errors import ConfigurationError
from nnunet_kd.pipeline.profiles import QUICK
from nnunet_kd.pipeline.runner import CommandRunner
from nnunet_kd.pipeline.stages import TeacherStudentPipeline
from nnunet_kd.pipeline.work_folder import OPTIONS_FILE, claim_work_folder


def options(**changes) -> dict:
    return {"profile": dataclasses.asdict(dataclasses.replace(QUICK, **changes)), "seed": 0}


def test_a_work_folder_is_claimed_by_its_first_options_and_refuses_others(tmp_path):
    claim_work_folder(tmp_path, options())
    assert (tmp_path / OPTIONS_FILE).is_file()
    claim_work_folder(tmp_path, options())  # the same options: a rerun resumes
    with pytest.raises(ConfigurationError, match=r"profile\.num_strong 8 -> 10"):
        claim_work_folder(tmp_path, options(num_strong=10))
    with pytest.raises(ConfigurationError, match=r"seed 0 -> 3"):
        claim_work_folder(tmp_path, {**options(), "seed": 3})


def nnunet_checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"network_weights": {"w": torch.ones(64)}, "trainer_name": "nnUNetTrainer"}, path)
    return path


@pytest.fixture
def pipeline(tmp_path) -> TeacherStudentPipeline:
    env = {k: str(tmp_path / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    return TeacherStudentPipeline(QUICK, tmp_path / "work", env, runner=None)


def test_training_is_done_only_with_a_loadable_final_checkpoint(pipeline):
    model = pipeline.teacher  # fold 'all': the quick trainers skip nnU-Net's validation there
    assert not pipeline.training_finished(model)
    checkpoint = nnunet_checkpoint(pipeline.model_folder(model) / "checkpoint_final.pth")
    assert pipeline.training_finished(model)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # cut off
    assert not pipeline.training_finished(model)


def test_training_interrupted_during_its_final_validation_is_not_done(pipeline):
    model = dataclasses.replace(pipeline.models[1], fold="0")
    folder = pipeline.model_folder(model)
    nnunet_checkpoint(folder / "checkpoint_final.pth")
    (folder / "validation").mkdir()
    assert not pipeline.training_finished(model)
    (folder / "validation" / "summary.json").write_text("{}")
    assert pipeline.training_finished(model)


def test_a_damaged_final_checkpoint_is_moved_aside_so_that_training_resumes(pipeline):
    calls = []
    pipeline.runner = type("Runner", (), {"run": lambda self, stage, command, env=None: calls.append(command)})()
    model = pipeline.models[1]
    checkpoint = nnunet_checkpoint(pipeline.model_folder(model) / "checkpoint_final.pth")
    checkpoint.write_bytes(b"cut")
    _, run = pipeline.training_step(model)
    run()
    assert not checkpoint.exists() and checkpoint.with_name("checkpoint_final.pth.damaged").read_bytes() == b"cut"
    assert calls and "--c" in calls[0]


CHILD = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(grandchild.pid))
print("started", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "State:\tZ" in status.read_text())  # a zombie has ended


def test_ctrl_c_ends_the_commands_worker_processes_too(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    runner = CommandRunner(dict(os.environ), tmp_path / "logs")

    def interrupt_when_started():
        for _ in range(200):
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        runner.run("stage", [sys.executable, "-c", CHILD, str(pid_file)])
    grandchild = int(pid_file.read_text())
    for _ in range(100):
        if not alive(grandchild):
            break
        time.sleep(0.05)
    assert not alive(grandchild)


def test_the_ignore_label_student_is_an_option_with_its_own_stages(tmp_path):
    env = {k: str(tmp_path / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    default = TeacherStudentPipeline(QUICK, tmp_path / "a", env, runner=None)
    with_option = TeacherStudentPipeline(dataclasses.replace(QUICK, ignore_label_student=True), tmp_path / "b", env,
                                         runner=None)
    names = [s.name for s in with_option.stages()]
    assert "ignore-labels" not in [s.name for s in default.stages()] and len(default.models) == 5
    assert names.index("plan-student") < names.index("ignore-labels") < names.index("train-ignore-label-student")
    student = with_option.models[-1]
    assert (student.dataset, student.trainer, student.configuration) == (503, QUICK.plain_trainer,
                                                                           QUICK.student_configuration)
    assert with_option.prediction_folder(student).name == "ignore-label_student"
