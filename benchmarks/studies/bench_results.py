"""The papers' scarce-label table on phantoms: teachers, baseline, students and the upper bound over several seeds.

For each seed ``k`` this runs ``nnunet_kd pipeline --<profile> -w WORK_ROOT/seed<k> --seed k`` (it resumes by
itself), then adds the upper bound: dataset 506 ``LungPhantomAllStrong`` = the strong training cases (500) + the
weak ones (502) with their hidden ground truth (``referenceTr``), trained with the baseline's trainer,
configuration and fold and predicted on the strong test set exactly as the pipeline predicts the baseline. Every
model is scored with ``nnunet_kd evaluate`` (``seed<k>/bench_results/``); the per-seed means are aggregated into
``WORK_ROOT/results.md`` and ``WORK_ROOT/results.json`` (mean ± sample std over seeds). Every step is skipped when
its output exists, so a rerun continues where it stopped.

    python benchmarks/studies/bench_results.py -w bench_work [--seeds 0 1 2] [--profile quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnunet_kd.atomic import atomic_write_json, atomic_write_text
from nnunet_kd.errors import NnunetKdError
from nnunet_kd.evaluation.summary import ALL_SOURCES
from nnunet_kd.evaluation.table import format_cost
from nnunet_kd.pipeline.profiles import PROFILES
from nnunet_kd.pipeline.runner import CommandRunner, pipeline_environment
from nnunet_kd.pipeline.stages import PLANS, STRONG, STRONG_NAME, WEAK, WEAK_NAME, Model, TeacherStudentPipeline
from nnunet_kd.pipeline.study import ALL_STRONG, ALL_STRONG_NAME, write_all_strong_dataset

POINT, UPPER = "point-guided teacher", "upper bound (all strong)"
METRICS = {"dice": "Dice (%)", "dsc_tp": "DSC-TP (%)", "object_f1": "Obj F1 (%)", "hd95_mm": "HD95 (mm)"}
COSTS = ("params", "inference s/case")
Summary = Mapping[str, Any]


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a one-line error naming the missing pipeline output."""
    if not path.exists():
        raise NnunetKdError(f"missing pipeline output: {what} ({path}); rerun the pipeline for this seed")
    return path


def cases_of(folder: Path, ending: str) -> dict[str, Path]:
    """``{case: file}`` of a label folder."""
    files = sorted(require(folder, f"{folder.parent.name}/{folder.name}").glob(f"*{ending}"))
    return {p.name[: -len(ending)]: p for p in files}


def run_pipeline(work: Path, profile: str, seed: int) -> None:
    """``nnunet_kd pipeline`` for one seed, its output shown as it comes."""
    script = Path(sys.executable).parent / "nnunet_kd"
    command = [str(script) if script.exists() else "nnunet_kd", "pipeline", f"--{profile}", "-w", str(work),
               "--seed", str(seed)]
    print(f"[bench-results] seed {seed}: {shlex.join(command)}", flush=True)
    try:
        code = subprocess.run(command).returncode
    except FileNotFoundError:
        raise NnunetKdError("the nnunet_kd command is not installed in this environment") from None
    if code != 0:
        raise NnunetKdError(f"nnunet_kd pipeline for seed {seed} exited with {code}; see its output and {work}/logs")


def upper_bound(pipeline: TeacherStudentPipeline) -> tuple[Model, Path]:
    """The upper-bound model (the baseline's trainer, configuration and fold on 506) and its model folder."""
    p = pipeline.profile
    pipeline.dataset_names[ALL_STRONG] = ALL_STRONG_NAME
    model = Model(UPPER, ALL_STRONG, p.plain_trainer, p.student_configuration, p.student_fold)
    return model, pipeline.model_folder(model)


def train_upper_bound(pipeline: TeacherStudentPipeline, runner: CommandRunner, cases: list[str]) -> None:
    """Preprocess 506 with the strong plans (unless every case is there) and train the upper bound."""
    model, folder = upper_bound(pipeline)
    data = pipeline.dataset_folder(ALL_STRONG, ALL_STRONG_NAME, pipeline.preprocessed) / f"{PLANS}_3d_fullres"
    if not all((data / f"{case}.pkl").is_file() for case in cases):
        pipeline.plan_with_strong_plans("bench-results", ALL_STRONG, ALL_STRONG_NAME)
    if not (folder / "checkpoint_final.pth").is_file():
        runner.run(f"bench-results-train-{ALL_STRONG}", ["nnUNetv2_train", ALL_STRONG, model.configuration, model.fold,
                                                         "-tr", model.trainer, "-device", pipeline.profile.device,
                                                         "--c"])


def predict_upper_bound(pipeline: TeacherStudentPipeline, out: Path) -> dict[str, Any]:
    """Predict the strong test set as the pipeline predicts the baseline; returns the cost entry (cached)."""
    model, _ = upper_bound(pipeline)
    n_test = len(cases_of(pipeline.dataset_folder(STRONG, STRONG_NAME) / "labelsTs", ".nii.gz"))
    cost_file = out.parent / "upper_bound_cost.json"
    if cost_file.is_file() and len(list(out.glob("*.nii.gz"))) == n_test:
        return json.loads(cost_file.read_text())
    entry = pipeline.model_cost(model, pipeline.predict_test_set(model, out, "bench-results-predict"))
    atomic_write_json(cost_file, entry)
    return entry


def pipeline_outputs(pipeline: TeacherStudentPipeline) -> tuple[dict[str, Path], dict[str, Any]]:
    """``{display name: prediction folder}`` and ``{display name: cost}`` of the pipeline's models (checked
    complete); the point-guided teacher is the baseline's predictions."""
    pipeline_costs = pipeline.recorded_costs()
    for model in pipeline.models:
        if not pipeline.prediction_complete(model, pipeline_costs):
            folder = pipeline.prediction_folder(model)
            raise NnunetKdError(f"missing pipeline output: {pipeline.profile.num_test} test predictions of the "
                                f"{model.name} in {folder} and its entry {folder.name!r} in {pipeline.costs_file}; "
                                "rerun the pipeline")
    folders = {POINT: pipeline.prediction_folder(pipeline.models[1])}
    folders.update({m.name: pipeline.prediction_folder(m) for m in pipeline.models})
    return folders, {name: pipeline_costs[folder.name] for name, folder in folders.items()}


def evaluate_seed(pipeline: TeacherStudentPipeline, runner: CommandRunner, bench: Path) -> tuple[dict, dict]:
    """Upper bound + ``nnunet_kd evaluate`` of all seven models; returns (summary.json, merged costs)."""
    folders, costs = pipeline_outputs(pipeline)
    strong = pipeline.dataset_folder(STRONG, STRONG_NAME)
    names = list(cases_of(strong / "labelsTr", ".nii.gz")) + \
        list(cases_of(pipeline.dataset_folder(WEAK, WEAK_NAME) / "referenceTr", ".nii.gz"))
    write_all_strong_dataset(pipeline)
    train_upper_bound(pipeline, runner, names)
    folders[UPPER] = bench / "predictions" / "upper_bound"
    costs[UPPER] = predict_upper_bound(pipeline, folders[UPPER])
    summary_file = bench / "summary.json"
    inputs = (pipeline.costs_file, folders[UPPER].parent / "upper_bound_cost.json")  # newer: predictions redone
    if not (summary_file.is_file() and list(json.loads(summary_file.read_text())["models"]) == list(folders)
            and summary_file.stat().st_mtime >= max(p.stat().st_mtime for p in inputs)):
        atomic_write_json(bench / "costs.json", costs)
        command = ["nnunet_kd", "evaluate", "--ref", strong / "labelsTs", "-o", bench, "--no-plots", "--costs",
                   bench / "costs.json"]
        runner.run("bench-results-evaluate", command + [a for n, f in folders.items() for a in ("--pred", f"{n}={f}")])
    return json.loads(summary_file.read_text()), costs


def over_seeds(values: Mapping[int, float | None]) -> dict[str, Any]:
    """Mean, sample std and n of the defined per-seed values (``None``/nan left out); ``None`` when undefined."""
    defined = [float(v) for v in values.values() if v is not None and not math.isnan(float(v))]
    return {"mean": statistics.fmean(defined) if defined else None,
            "std": statistics.stdev(defined) if len(defined) > 1 else None,
            "n": len(defined), "n_seeds": len(values), "values": dict(values)}


def aggregate(summaries: Mapping[int, Summary], costs: Mapping[int, Mapping[str, Any]] | None = None) -> dict:
    """``{model: {metric or cost column: over_seeds(...)}}`` from ``{seed: summary.json}`` (+ ``{seed: costs}``).

    A seed's value of a metric is its ``models[model]["all cases"]["metrics"][metric]["mean"]`` (mean over cases;
    ``null`` there, or a model absent from that seed, counts as missing).
    """
    models = list(dict.fromkeys(m for summary in summaries.values() for m in summary["models"]))
    result: dict[str, dict[str, Any]] = {}
    for model in models:
        entry = {metric: over_seeds({seed: s["models"].get(model, {}).get(ALL_SOURCES, {}).get("metrics", {})
                                     .get(metric, {}).get("mean") for seed, s in summaries.items()})
                 for metric in METRICS}
        for column in COSTS:
            entry[column] = over_seeds({seed: c.get(model, {}).get(column) for seed, c in (costs or {}).items()})
        result[model] = entry
    return result


def format_cell(stats: Mapping[str, Any], metric: str) -> str:
    """``"84.12 ± 5.31"`` (fractions in %), ``" (n=2/3)"`` when seeds are missing, ``n/a`` when none."""
    if stats["n"] == 0:
        return f"n/a (n=0/{stats['n_seeds']})"
    scale = 1.0 if metric == "hd95_mm" else 100.0
    text = f"{stats['mean'] * scale:.2f}" + (f" ± {stats['std'] * scale:.2f}" if stats["std"] is not None else "")
    return text + (f" (n={stats['n']}/{stats['n_seeds']})" if stats["n"] < stats["n_seeds"] else "")


def markdown_table(table: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per model: the four metrics (mean ± std over seeds), parameters and mean inference s/case."""
    lines = ["| model | " + " | ".join(METRICS.values()) + " | params | inference s/case |",
             "|---|" + "---:|" * (len(METRICS) + 2)]
    for model, entry in table.items():
        cells = [format_cell(entry[m], m) for m in METRICS] + [format_cost(entry["params"]["mean"])]
        seconds = entry["inference s/case"]["mean"]
        lines.append(f"| {model} | " + " | ".join(cells + ["–" if seconds is None else f"{seconds:.2f}"]) + " |")
    return "\n".join(lines)


def write_results(root: Path, table: dict, profile: str, seeds: list[int]) -> str:
    """``results.md`` and ``results.json`` under ``root``; returns the Markdown."""
    p = PROFILES[profile]
    date = datetime.date.today().isoformat()
    machine = f"{platform.processor() or platform.machine()}/{os.cpu_count()} CPUs, device {p.device}"
    command = shlex.join(["python", *sys.argv])
    text = "\n".join([
        f"# Scarce-label results on phantoms ({profile} profile, seeds {' '.join(map(str, seeds))})", "",
        markdown_table(table), "",
        f"Mean ± sample std over {len(seeds)} seeds of each seed's mean over the {p.num_test} held-out test cases "
        "(Dice, DSC-TP, object F1 in %, HD95 in mm; undefined per-seed values are left out and `n` shown).",
        f"The point-guided teacher is the pipeline's baseline model ({p.plain_trainer}, {p.student_configuration}, "
        f"fold {p.student_fold}, strong dataset, no box input): its predictions are reused, not trained twice. "
        f"Upper bound: the same trainer/configuration/fold on dataset {ALL_STRONG} (all {p.num_strong + p.num_weak} "
        "training cases strongly labelled). Inference s/case: wall time of nnUNetv2_predict per case.", "",
        f"Command: `{command}`; profile {profile}; seeds {seeds}; {date}; {machine}.", ""])
    atomic_write_text(root / "results.md", text)
    atomic_write_json(root / "results.json", {"command": command, "profile": profile, "seeds": seeds, "date": date,
                                              "machine": machine, "models": table})
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-w", "--work-root", required=True, type=Path, help="one work folder per seed: seed<k>/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    args = parser.parse_args()
    root, seeds = args.work_root.resolve(), list(dict.fromkeys(args.seeds))
    if root.exists() and not root.is_dir():
        parser.error(f"{root} is not a folder")
    summaries, costs = {}, {}
    for seed in seeds:
        work = root / f"seed{seed}"
        run_pipeline(work, args.profile, seed)
        env = pipeline_environment(work, use_existing_folders=False)
        runner = CommandRunner(env, work / "logs")
        pipeline = TeacherStudentPipeline(PROFILES[args.profile], work, env, runner, seed)
        summaries[seed], costs[seed] = evaluate_seed(pipeline, runner, work / "bench_results")
    print(write_results(root, aggregate(summaries, costs), args.profile, seeds))
    print(f"wrote {root / 'results.md'} and {root / 'results.json'}")


if __name__ == "__main__":
    try:
        main()
    except NnunetKdError as error:
        sys.exit(f"bench_results: error: {error}")
    except KeyboardInterrupt:
        sys.exit("bench_results: interrupted; rerun the same command to resume")
