"""The teacher-student chain as resumable stages (``docs/architecture.md``, "The pipeline").

Every stage runs real nnU-Net commands (or ``nnunet_kd`` subcommands) and is skipped when its output exists and is
valid, so a rerun after Ctrl-C or a failure continues where it stopped (an interrupted ``nnUNetv2_train`` resumes
from its latest checkpoint through ``--c``; a training counts as done once its final checkpoint loads and its final
validation finished). The work folder keeps the options it was made with (:mod:`.work_folder`).

Datasets: 500 strong phantoms (voxel labels, plus the held-out test set), 502 weak phantoms (boxes only), 501 the
student dataset (strong + pseudo-labelled weak cases, planned with 500's plans so teacher and student share spacing
and normalisation).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnunet_kd.pipeline.profiles import Profile
from nnunet_kd.pipeline.runner import CommandRunner

STRONG, STUDENT, WEAK, IGNORE = 500, 501, 502, 503
STRONG_NAME, STUDENT_NAME, WEAK_NAME = "LungPhantomStrong", "LungPhantomStudent", "LungPhantomWeak"
IGNORE_NAME = "LungPhantomIgnore"
PLANS = "nnUNetPlans"
STRONG_NAME_PREFIX = "strong"  # case names of the strong phantoms: strong_<i>, test cases strong_t<i>


@dataclass(frozen=True)
class Model:
    """A trained model of the pipeline and how to predict the test set with it."""

    name: str
    dataset: int
    trainer: str
    configuration: str
    fold: str
    uses_boxes: bool = False
    distills: bool = False  # trained with the pipeline's teacher spec (NNUNET_KD_SPEC)


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    done: Callable[[], bool]
    run: Callable[[], None]


class TeacherStudentPipeline:
    """The stages of one pipeline run in ``work_dir`` with the folders of ``env``."""

    def __init__(self, profile: Profile, work_dir: Path, env: dict[str, str], runner: CommandRunner, seed: int = 0):
        self.profile = profile
        self.work_dir = work_dir
        self.raw = Path(env["nnUNet_raw"])
        self.preprocessed = Path(env["nnUNet_preprocessed"])
        self.results = Path(env["nnUNet_results"])
        self.runner = runner
        self.env = env
        self.seed = seed
        #: dataset id -> name; benchmarks that add datasets (coarse labels, upper bound) register theirs here
        self.dataset_names = {STRONG: STRONG_NAME, STUDENT: STUDENT_NAME, WEAK: WEAK_NAME, IGNORE: IGNORE_NAME}
        p = profile
        self.box_configuration = f"{p.student_configuration}_box"
        self.compact_configuration = f"{p.student_configuration}_compact"
        self.teacher = Model("box-guided teacher", STRONG, p.box_trainer, self.box_configuration, p.teacher_fold, True)
        self.models = [
            self.teacher,
            Model("baseline (strong only)", STRONG, p.plain_trainer, p.student_configuration, p.student_fold),
            Model("SO student (strong + pseudo)", STUDENT, p.plain_trainer, p.student_configuration, p.student_fold),
            Model("MKD student", STUDENT, p.kd_trainer, p.student_configuration, p.student_fold, distills=True),
            Model("compact MKD student", STUDENT, p.kd_trainer, self.compact_configuration, p.student_fold,
                  distills=True),
        ]
        if p.ignore_label_student:
            self.models.append(Model("ignore-label student (strong + boxes, no teacher)", IGNORE, p.plain_trainer,
                                     p.student_configuration, p.student_fold))

    # ------------------------------------------------------------------------------------------ paths
    def dataset_folder(self, dataset: int, name: str, root: Path | None = None) -> Path:
        return (root or self.raw) / f"Dataset{dataset:03d}_{name}"

    def plans_file(self, dataset: int, name: str) -> Path:
        return self.dataset_folder(dataset, name, self.preprocessed) / f"{PLANS}.json"

    def model_folder(self, model: Model) -> Path:
        return self.dataset_folder(model.dataset, self.dataset_names[model.dataset], self.results) / \
            f"{model.trainer}__{PLANS}__{model.configuration}" / f"fold_{model.fold}"

    def prediction_folder(self, model: Model) -> Path:
        return self.work_dir / "predictions" / model.name.split(" (")[0].replace(" ", "_")

    @property
    def report_folder(self) -> Path:
        return self.work_dir / "report"

    @property
    def spec_file(self) -> Path:
        return self.work_dir / "kd_teachers.json"

    # ------------------------------------------------------------------------------------------ stages
    def stages(self) -> list[Stage]:
        return [
            Stage("data", "synthetic strong, weak and test phantoms", self._data_done, self._data),
            Stage("plan", "nnUNetv2_plan_and_preprocess of the strong dataset + added configurations",
                  self._plan_done, self._plan),
            Stage("teacher", "box-guided teacher on all strong cases", *self.training_step(self.teacher)),
            Stage("pseudo-labels", "teacher + boxes -> student dataset (strong + pseudo-labelled)",
                  self._pseudo_done, self._pseudo),
            Stage("plan-student", "student dataset preprocessed with the teacher's plans",
                  self._plan_student_done, self._plan_student),
            *([Stage("ignore-labels", "strong + weak cases with the ignore label inside the boxes, preprocessed",
                     self._ignore_done, self._ignore)] if self.profile.ignore_label_student else []),
            *(Stage(f"train-{m.name.split(' (')[0].replace(' ', '-')}", f"train the {m.name}",
                    *self.training_step(m))
              for m in self.models[1:]),
            Stage("predict", "predict the held-out test set with every model", self._predict_done, self._predict),
            Stage("evaluate", "metrics, side-by-side table and plots", self._evaluate_done, self._evaluate),
        ]

    def _data_done(self) -> bool:
        return all((self.dataset_folder(d, n) / "phantoms.json").is_file()
                   for d, n in ((STRONG, STRONG_NAME), (WEAK, WEAK_NAME)))

    def _data(self) -> None:
        from nnunet_kd.synthetic.phantom_dataset import write_phantom_dataset

        p = self.profile
        write_phantom_dataset(self.raw, STRONG, STRONG_NAME, p.num_strong + p.num_validation, p.num_test, self.seed,
                              "strong", p.phantom, case_prefix=STRONG_NAME_PREFIX, progress=True)
        write_phantom_dataset(self.raw, WEAK, WEAK_NAME, p.num_weak, 0, self.seed, "weak", p.phantom,
                              case_prefix="weak", progress=True)

    def _plan_done(self) -> bool:
        plans = self.plans_file(STRONG, STRONG_NAME)
        return plans.is_file() and self.box_configuration in json.loads(plans.read_text())["configurations"]

    def _plan(self) -> None:
        self.runner.run("plan", ["nnUNetv2_plan_and_preprocess", "-d", STRONG, "-c", "3d_fullres", "-np", "1",
                                 "-npfp", "1", "--verify_dataset_integrity"])
        self._add_configurations(self.plans_file(STRONG, STRONG_NAME))

    def _add_configurations(self, plans_file: Path) -> None:
        """The quick profile's small student configuration and the box-guided teacher's configuration."""
        from nnunet_kd.boxes.cascade_configuration import add_box_guided_configuration

        p = self.profile
        self._add_small_student_configuration(plans_file)
        add_box_guided_configuration(plans_file, p.student_configuration, self.box_configuration,
                                     patch_size=list(p.teacher_patch) if p.teacher_patch else None)

    def _add_small_student_configuration(self, plans_file: Path, overwrite: bool = False) -> None:
        """The profile's small ``PlainConvUNet`` student configuration (nothing for a ``3d_fullres`` student)."""
        from nnunet_kd.plans import add_configuration, load_plans, small_plain_configuration

        p = self.profile
        if p.student_configuration != "3d_fullres":
            small = small_plain_configuration(load_plans(plans_file), features=p.small_features,
                                              patch_size=p.student_patch)
            add_configuration(plans_file, p.student_configuration, small, overwrite=overwrite)

    def training_finished(self, model: Model) -> bool:
        """``checkpoint_final.pth`` loads (whole, no code in it) and nnU-Net's final validation finished: for a fold
        other than ``all``, and wherever the validation started, its ``summary.json`` exists."""
        from nnunet_kd.errors import InputError
        from nnunet_kd.integrity.checkpoints import load_checkpoint

        folder = self.model_folder(model)
        try:
            load_checkpoint(folder / "checkpoint_final.pth", model.name)
        except InputError:
            return False
        validation = folder / "validation"
        return (validation / "summary.json").is_file() if model.fold != "all" or validation.exists() else True

    def training_step(self, model: Model) -> tuple[Callable[[], bool], Callable[[], None]]:
        """``(done, run)`` of the model's training: ``nnUNetv2_train --c`` with the profile's environment, the
        validation split when the profile has validation cases, and the teacher spec for a distilling model."""

        def done() -> bool:
            return self.training_finished(model)

        def run() -> None:
            self._set_aside_damaged_checkpoint(model)
            extra = self.training_environment()
            if self.profile.num_validation:
                self.write_validation_split(model.dataset)
            if model.distills:
                extra["NNUNET_KD_SPEC"] = str(self.spec_file)
                self._write_spec()
            self.runner.run(f"train-{model.trainer}-{model.configuration}",
                            ["nnUNetv2_train", model.dataset, model.configuration, model.fold, "-tr", model.trainer,
                             "-device", self.profile.device, "--c"], extra)

        return done, run

    @property
    def validation_cases(self) -> list[str]:
        """The strong validation phantoms: the last ``num_validation`` training cases of the strong dataset."""
        p = self.profile
        return [f"{STRONG_NAME_PREFIX}_{i:03d}" for i in range(p.num_strong, p.num_strong + p.num_validation)]

    def write_validation_split(self, dataset: int) -> None:
        """``splits_final.json`` of a preprocessed dataset with one fold: every labelled case of the raw dataset but
        the validation phantoms trains, those validate (rewritten only when it differs)."""
        from nnunet_kd.atomic import atomic_write_json
        from nnunet_kd.errors import ConfigurationError

        name = self.dataset_names[dataset]
        raw = self.dataset_folder(dataset, name)
        ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
        cases = sorted(f.name[: -len(ending)] for f in (raw / "labelsTr").glob(f"*{ending}"))
        wanted = set(self.validation_cases)  # export-pseudo-labels prefixes strong cases it copies: strong_strong_008
        validation = [c for c in cases if c in wanted or c.removeprefix(f"{STRONG_NAME_PREFIX}_") in wanted]
        if len(validation) != self.profile.num_validation:
            raise ConfigurationError(f"{raw.name} holds {len(validation)} of the {self.profile.num_validation} "
                                     f"validation cases {sorted(wanted)}")
        split = [{"train": [c for c in cases if c not in validation], "val": validation}]
        target = self.dataset_folder(dataset, name, self.preprocessed) / "splits_final.json"
        if not target.is_file() or json.loads(target.read_text()) != split:
            atomic_write_json(target, split)

    def training_environment(self) -> dict[str, str]:
        """Environment of ``nnUNetv2_train`` beyond the pipeline's: the profile's augmentation processes, unless the
        user set ``nnUNet_n_proc_DA`` (planning never gets 0: nnU-Net's planning crashes with it)."""
        processes = self.profile.augmentation_processes
        if processes is None or "nnUNet_n_proc_DA" in self.env:
            return {}
        return {"nnUNet_n_proc_DA": str(processes)}

    def _set_aside_damaged_checkpoint(self, model: Model) -> None:
        """A ``checkpoint_final.pth`` that does not load is renamed ``.damaged``: ``nnUNetv2_train --c`` would load it
        and fail, while without it it resumes from ``checkpoint_latest.pth``."""
        from nnunet_kd.errors import InputError
        from nnunet_kd.integrity.checkpoints import load_checkpoint

        final = self.model_folder(model) / "checkpoint_final.pth"
        if not final.is_file():
            return
        try:
            load_checkpoint(final, model.name)
        except InputError as error:
            print(f"{error}; renamed to {final.name}.damaged, training resumes from its latest checkpoint", flush=True)
            final.replace(final.with_name(f"{final.name}.damaged"))

    def _write_spec(self) -> None:
        from nnunet_kd.distillation.spec import write_spec

        teacher = {"dataset": STRONG, "trainer": self.teacher.trainer, "configuration": self.teacher.configuration,
                   "folds": [self.teacher.fold]}
        write_spec(self.spec_file, {"teachers": [teacher]}, overwrite=True)

    def _pseudo_done(self) -> bool:
        return (self.dataset_folder(STUDENT, STUDENT_NAME) / "dataset.json").is_file()

    def _pseudo(self) -> None:
        t = self.teacher
        command = ["nnunet_kd", "export-pseudo-labels", "-t", f"{STRONG}:{t.trainer}:{t.configuration}:{t.fold}",
                   "-w", WEAK, "-s", STRONG, "-o", STUDENT, "--output-name", STUDENT_NAME, "-device",
                   self.profile.device]
        if self.profile.device == "cpu":
            command.append("--disable-tta")
        self.runner.run("pseudo-labels", command)

    def _plan_student_done(self) -> bool:
        plans = self.plans_file(STUDENT, STUDENT_NAME)
        return plans.is_file() and self.compact_configuration in json.loads(plans.read_text())["configurations"]

    def _plan_student(self) -> None:
        from nnunet_kd.students.configuration import add_student_configuration

        self.plan_with_strong_plans("plan-student", STUDENT, STUDENT_NAME)
        p = self.profile
        add_student_configuration(self.plans_file(STUDENT, STUDENT_NAME), self.compact_configuration,
                                  p.student_configuration, p.compact_width, p.compact_aspp_rates, kind=p.compact_kind)

    def _ignore_done(self) -> bool:
        plans = self.plans_file(IGNORE, IGNORE_NAME)
        return plans.is_file() and self.profile.student_configuration in json.loads(plans.read_text())["configurations"]

    def _ignore(self) -> None:
        """``boxes-to-labels --ignore-inside`` of the weak dataset with the strong one merged, preprocessed with the
        strong dataset's plans (the student configuration added as for the other students)."""
        if not (self.dataset_folder(IGNORE, IGNORE_NAME) / "dataset.json").is_file():  # written whole, or not at all
            self.runner.run("ignore-labels", ["nnunet_kd", "boxes-to-labels", "-i", WEAK, "-d", IGNORE, "--name",
                                              IGNORE_NAME, "--ignore-inside", "--strong", STRONG])
        self.plan_with_strong_plans("ignore-labels", IGNORE, IGNORE_NAME)
        self._add_small_student_configuration(self.plans_file(IGNORE, IGNORE_NAME), overwrite=True)

    def plan_with_strong_plans(self, stage: str, dataset: int, name: str) -> None:
        """Preprocess a raw dataset with the strong dataset's plans (same spacing and CT normalisation)."""
        self.runner.run(stage, ["nnUNetv2_extract_fingerprint", "-d", dataset, "-np", "1"])
        self.runner.run(stage, ["nnUNetv2_move_plans_between_datasets", "-s", STRONG, "-t", dataset, "-sp", PLANS,
                                "-tp", PLANS])
        # nnUNetv2_plan_and_preprocess would copy dataset.json here; moving plans does not, preprocessing needs it
        shutil.copy(self.dataset_folder(dataset, name) / "dataset.json",
                    self.dataset_folder(dataset, name, self.preprocessed) / "dataset.json")
        self.runner.run(stage, ["nnUNetv2_preprocess", "-d", dataset, "-plans_name", PLANS, "-c", "3d_fullres",
                                "-np", "1"])

    def _predict_done(self) -> bool:
        costs = self.recorded_costs()
        return all(self.prediction_complete(m, costs) for m in self.models)

    def recorded_costs(self) -> dict[str, dict[str, float]]:
        """``{prediction folder name: cost entry}`` of the models predicted so far (empty before the first)."""
        return json.loads(self.costs_file.read_text()) if self.costs_file.is_file() else {}

    def prediction_complete(self, model: Model, costs: dict[str, dict[str, float]]) -> bool:
        """The model's test-set predictions are all there and its cost entry was recorded after them."""
        folder = self.prediction_folder(model)
        return folder.name in costs and len(list(folder.glob("*.nii.gz"))) == self.profile.num_test

    @property
    def costs_file(self) -> Path:
        return self.work_dir / "predictions" / "costs.json"

    def model_cost(self, model: Model, seconds_per_case: float) -> dict[str, float]:
        """Parameters and MACs of the model's network (its plans) and the measured prediction time per case."""
        from nnunet_kd.plans import load_plans
        from nnunet_kd.students.cost import configuration_cost

        plans = load_plans(self.model_folder(model).parent / "plans.json")
        cost = configuration_cost(plans, model.configuration, 2 if model.uses_boxes else 1, 2)
        return {"params": cost.parameters, "MACs": cost.macs, "inference s/case": round(seconds_per_case, 2)}

    def predict_test_set(self, model: Model, out: Path, stage: str = "predict") -> float:
        """``nnUNetv2_predict`` of the strong test set with ``model`` (its boxes if it takes them) into ``out``;
        returns the wall time per case, process start-up included (the same for every model)."""
        import time

        strong = self.dataset_folder(STRONG, STRONG_NAME)
        command = ["nnUNetv2_predict", "-i", strong / "imagesTs", "-o", out, "-d", model.dataset, "-c",
                   model.configuration, "-tr", model.trainer, "-f", model.fold, "-device", self.profile.device]
        workers = "0" if self.profile.predict_in_process else "1"
        command += ["-npp", workers, "-nps", workers]
        if model.uses_boxes:
            command += ["-prev_stage_predictions", strong / "boxesTs"]
        if self.profile.device == "cpu":
            command.append("--disable_tta")
        start = time.time()
        self.runner.run(stage, command)
        return (time.time() - start) / self.profile.num_test

    def _predict(self) -> None:
        """Predict with every model whose predictions are not complete yet; each model's cost entry is recorded as
        soon as it finishes, so an interrupted stage resumes with the next model."""
        from nnunet_kd.atomic import atomic_write_json

        costs = self.recorded_costs()
        for model in self.models:
            if self.prediction_complete(model, costs):
                continue
            out = self.prediction_folder(model)
            costs[out.name] = self.model_cost(model, self.predict_test_set(model, out))
            atomic_write_json(self.costs_file, costs)

    def _evaluate_done(self) -> bool:
        return (self.report_folder / "summary.json").is_file()

    def _evaluate(self) -> None:
        strong = self.dataset_folder(STRONG, STRONG_NAME)
        command = ["nnunet_kd", "evaluate", "--ref", strong / "labelsTs", "-o", self.report_folder,
                   "--images", strong / "imagesTs", "--costs", self.costs_file]
        for model in self.models:
            command += ["--pred", f"{self.prediction_folder(model).name}={self.prediction_folder(model)}"]
        self.runner.run("evaluate", command)
