"""nnU-Net finds every shipped trainer through nnUNet_extTrainer, with the contract nnU-Net relies on."""

from __future__ import annotations

import inspect
import os
import pickle
import sys
from pathlib import Path

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

import nnunet_kd.trainers
from nnunet_kd.errors import ConfigurationError
from nnunet_kd.trainer_lookup import EXPORT_MODULE, check_ext_trainer_value, trainer_dir

SHIPPED = list(nnunet_kd.trainers.__all__)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ext_trainer(monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_dir()))


def test_lookup_folder_holds_only_the_reexport_module():
    modules = sorted(p.stem for p in trainer_dir().glob("*.py") if p.stem != "__init__")
    assert modules == [EXPORT_MODULE]
    assert not [p for p in trainer_dir().iterdir() if p.is_dir() and p.name != "__pycache__"]


def test_every_trainer_class_of_the_package_is_exported():
    import importlib
    import pkgutil

    defined = set()
    for info in pkgutil.iter_modules(nnunet_kd.trainers.__path__):
        module = importlib.import_module(f"nnunet_kd.trainers.{info.name}")
        defined |= {name for name, obj in vars(module).items() if inspect.isclass(obj)
                    and issubclass(obj, nnUNetTrainer) and obj.__module__ == module.__name__
                    and name.startswith("nnUNetTrainer")}
    assert defined - {"nnUNetTrainerDistillationBase"} == set(SHIPPED)  # the base is not a trainer to train


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_trainer_is_found_and_is_the_package_class(ext_trainer, name):
    found = recursive_find_trainer_class_by_name(name)
    assert found is getattr(nnunet_kd.trainers, name)
    assert found.__module__.startswith("nnunet_kd.trainers.")


@pytest.mark.parametrize("name", SHIPPED)
def test_init_signature_equals_nnunet_trainer(name):
    cls = getattr(nnunet_kd.trainers, name)
    assert inspect.signature(cls.__init__, eval_str=True) == inspect.signature(nnUNetTrainer.__init__, eval_str=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_build_network_architecture_is_static(name):
    cls = getattr(nnunet_kd.trainers, name)
    assert isinstance(inspect.getattr_static(cls, "build_network_architecture"), staticmethod)


def test_no_shipped_name_collides_with_a_builtin_trainer(monkeypatch):
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    for name in SHIPPED:
        with pytest.raises(RuntimeError, match="Could not find"):
            recursive_find_trainer_class_by_name(name)


def test_classes_pickle_after_lookup_purged_the_export_module(ext_trainer):
    cls = recursive_find_trainer_class_by_name(SHIPPED[0])
    assert EXPORT_MODULE not in sys.modules  # nnU-Net purged what it imported from the ext folder...
    assert pickle.loads(pickle.dumps(cls)) is cls  # ...and the class still pickles: it lives in the package
    mixin_method = pickle.loads(pickle.dumps(cls.configure_rotation_dummyDA_mirroring_and_inital_patch_size))
    assert mixin_method is cls.configure_rotation_dummyDA_mirroring_and_inital_patch_size


def test_pointing_at_the_source_folder_is_the_trap_and_is_refused(monkeypatch):
    source = REPO / "trainers"
    # the trap, reproduced: nnU-Net imports the modules under top-level names and purges them afterwards, so
    # its class is a second copy that does not pickle
    monkeypatch.setenv("nnUNet_extTrainer", str(source))
    duplicate = recursive_find_trainer_class_by_name(SHIPPED[0])
    assert duplicate is not getattr(nnunet_kd.trainers, SHIPPED[0])
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(duplicate)
    # our check names the problem and the fix
    with pytest.raises(ConfigurationError, match="source folder"):
        check_ext_trainer_value(str(source))


@pytest.mark.parametrize(
    "value, message",
    [(None, "not set"), ("", "not set"), ("/does/not/exist", "not an existing folder"), ("/tmp", "does not contain")],
)
def test_wrong_ext_trainer_values_get_one_clear_error(value, message):
    with pytest.raises(ConfigurationError, match=message):
        check_ext_trainer_value(value)


def test_correct_value_with_other_entries_is_accepted(tmp_path):
    check_ext_trainer_value(os.pathsep.join([str(tmp_path), str(trainer_dir())]))
