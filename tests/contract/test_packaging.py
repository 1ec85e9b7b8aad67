"""The wheel installs only the ``nnunet_kd`` package, and a wheel install serves nnU-Net's trainer lookup."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel_file,) = out.glob("nnunet_kd-*.whl")
    return wheel_file


def test_wheel_has_no_top_level_package_but_nnunet_kd(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"nnunet_kd"}
    assert "nnunet_kd/trainers/quick.py" in names  # the repo's trainers/ folder, installed inside the package
    assert "nnunet_kd/dataset_conversion/__init__.py" in names
    assert "nnunet_kd/trainer_lookup/nnunet_kd_trainer_exports.py" in names
    # every package of the source tree is in the wheel (setup.cfg lists them one by one)
    for init in sorted(REPO.glob("nnunet_kd/**/__init__.py")):
        assert init.relative_to(REPO).as_posix() in names, f"{init} missing from the wheel: add it to setup.cfg"
    for folder, package in (("trainers", "nnunet_kd/trainers"), ("dataset_conversion", "nnunet_kd/dataset_conversion")):
        for module in sorted((REPO / folder).glob("*.py")):
            assert f"{package}/{module.name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nnunet_kd = nnunet_kd.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_install_finds_trainers_through_trainer_dir(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    script = (
        "import os, pickle\n"
        "from nnunet_kd.trainer_lookup import trainer_dir\n"
        "os.environ['nnUNet_extTrainer'] = str(trainer_dir())\n"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name\n"
        "cls = recursive_find_trainer_class_by_name('nnUNetTrainerQuick')\n"
        "import nnunet_kd.trainers.quick as q\n"
        "assert cls is q.nnUNetTrainerQuick and pickle.loads(pickle.dumps(cls)) is cls\n"
        "print(trainer_dir())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("nnUNet_extTrainer", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.strip().splitlines()[-1]).is_relative_to(target)
