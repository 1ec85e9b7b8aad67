"""Tables, convergence, paired statistics, the papers' claims and the figure of a study file (``study.py``).

    python benchmarks/studies/study_report.py benchmarks/results/study.json [--figure benchmarks/results/study.png]

Prints Markdown: per model the mean ± sample std over seeds of the per-seed mean Dice, HD95, object F1 and DSC-TP;
per model and seed the validation Dice at the end of training and whether it converged (``CONVERGENCE_CRITERION``;
beside it the least-squares change over the last 20 % of the epochs and the curve's noise); the claims as pooled paired
comparisons over every (seed, test case) (median and mean difference, each with its bootstrap 95 % confidence
interval, Wilcoxon signed-rank p), each *reproduced*, *not reproduced* or *inconclusive* by the median's interval and
by the mean's.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from nnunet_kd.evaluation.study_statistics import (
    CONVERGENCE_CRITERION,
    claim_verdict,
    compare,
    converged,
    curve_noise,
    final_trend,
    plateau_change,
    seed_means,
)

METRICS = {"dice": ("Dice (%)", 100.0), "hd95": ("HD95 (mm)", 1.0), "object_f1": ("Obj F1 (%)", 100.0),
           "dsc_tp": ("DSC-TP (%)", 100.0)}
#: (claim, model a, model b, median b − a must be at least this, in Dice fractions)
CLAIMS = (
    ("(a) box-guided − point-guided teacher ≥ +10", "point_guided_teacher", "box_guided_teacher", 0.10),
    ("(b) SO student − strong-only baseline ≥ +10", "point_guided_teacher", "so_student", 0.10),
    ("(c) SO student within 2 of the all-strong upper bound", "all_strong", "so_student", -0.02),
    ("(d) MKD student − SO student > 0", "so_student", "mkd_student", 0.0),
    ("(e) compact MKD − compact without KD ≥ +2", "compact_student", "compact_mkd_student", 0.02),
    ("(e) compact MKD within 3 of the full MKD student", "mkd_student", "compact_mkd_student", -0.03),
)


def models_of(study: dict) -> list[str]:
    return list(dict.fromkeys(row["model"] for row in study["rows"]))


def results_table(study: dict) -> str:
    lines = ["| model | " + " | ".join(label for label, _ in METRICS.values()) + " | seeds × cases |",
             "|---|" + "---:|" * (len(METRICS) + 1)]
    for model in models_of(study):
        cells = []
        for metric, (_, scale) in METRICS.items():
            mean, std, _ = seed_means(study["rows"], model, metric)
            cells.append(f"{mean * scale:.1f}" + ("" if math.isnan(std) else f" ± {std * scale:.1f}"))
        n = sum(row["model"] == model for row in study["rows"])
        seeds = len({row["seed"] for row in study["rows"] if row["model"] == model})
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {seeds} × {n // max(seeds, 1)} |")
    return "\n".join(lines)


def validation_curve(curve: dict) -> list[float | None]:
    """The curve convergence is judged by: the whole validation cases' Dice where measured, else nnU-Net's per-epoch
    pseudo Dice (study files written before the trainers measured whole cases)."""
    return curve["val_cases_dice"] if any(v is not None for v in curve.get("val_cases_dice", [])) else curve["val_dice"]


def convergence_table(study: dict) -> str:
    seeds = sorted({c["seed"] for c in study["curves"]})
    lines = ["| model | iterations | " + " | ".join(f"seed {s}: final val Dice, plateau change (trend, noise)"
                                                    for s in seeds) + " |",
             "|---|---:|" + "---|" * len(seeds)]
    for model in models_of(study):
        curves = {c["seed"]: c for c in study["curves"] if c["model"] == model}
        cells = []
        for seed in seeds:
            curve = curves.get(seed)
            if curve is None:
                cells.append("–")
                continue
            values = validation_curve(curve)
            mark = "converged" if converged(values) else "**not converged**"
            last = [v for v in values if v is not None][-1]
            cells.append(f"{last * 100:.1f}, {plateau_change(values) * 100:+.1f} ({final_trend(values) * 100:+.1f}, "
                         f"{curve_noise(values) * 100:.1f}) {mark}")
        iterations = next(iter(curves.values()))["iterations"] if curves else "–"
        lines.append(f"| {model} | {iterations} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claims_table(study: dict) -> str:
    lines = ["| claim | pairs | median b − a [95 % CI] | mean b − a [95 % CI] | Wilcoxon p | verdict (median) | "
             "verdict (mean) |", "|---|---:|---|---|---:|---|---|"]
    present = set(models_of(study))
    for claim, a, b, at_least in CLAIMS:
        if not {a, b} <= present:
            lines.append(f"| {claim} | 0 | – | – | – | missing models | missing models |")
            continue
        c = compare(study["rows"], a, b)
        lines.append(f"| {claim} | {c.n_pairs} | {c.median_difference * 100:+.1f} "
                     f"[{c.ci_low * 100:+.1f}, {c.ci_high * 100:+.1f}] | {c.mean_difference * 100:+.1f} "
                     f"[{c.mean_ci_low * 100:+.1f}, {c.mean_ci_high * 100:+.1f}] | {c.p_wilcoxon:.2g} | "
                     f"{claim_verdict(c, at_least)} | {claim_verdict(c, at_least, 'mean')} |")
    return "\n".join(lines)


def write_figure(study: dict, path: Path) -> None:
    """Left: per-model test Dice over every seed and case; right: validation Dice per epoch (one line per seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = models_of(study)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    data = [[row["dice"] * 100 for row in study["rows"] if row["model"] == m and row["dice"] is not None]
            for m in models]
    left.boxplot(data, orientation="horizontal", tick_labels=models, showmeans=True)
    left.invert_yaxis()
    left.set_xlabel("test Dice (%) per case, all seeds")
    colours = plt.get_cmap("tab10")
    for i, model in enumerate(models):
        for j, curve in enumerate(c for c in study["curves"] if c["model"] == model):
            points = [(epoch, v * 100) for epoch, v in enumerate(validation_curve(curve)) if v is not None]
            right.plot(*zip(*points, strict=True), color=colours(i % 10), alpha=0.8, label=model if j == 0 else None)
    right.set_xlabel("epoch")
    right.set_ylabel("validation Dice (%), whole validation cases")
    right.legend(fontsize=7, loc="lower right")
    config = study["config"]
    fig.suptitle(f"Phantom study: seeds {config['seeds']}, {config['num_test_cases']} test cases per seed, "
                 f"strong : weak {config['strong_to_weak']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="study.json written by study.py")
    parser.add_argument("--figure", type=Path, default=None, help="write the figure (PNG) here")
    args = parser.parse_args()
    study = json.loads(args.study.read_text())
    config = study["config"]
    print(f"Study: seeds {config['seeds']}, {config['num_test_cases']} test cases per seed, strong : weak "
          f"{config['strong_to_weak']}, commit {config['commit']}, {config['machine']}, wall time "
          f"{sum(config['wall_s'].values()) / 3600:.1f} h.\n")
    print(results_table(study) + "\n")
    print(f"Convergence: converged when {CONVERGENCE_CRITERION}. Validation Dice in %; beside it the least-squares "
          "change over the last 20 % and the noise (std around the line through the last 40 %), in points:\n")
    print(convergence_table(study) + "\n")
    print("Claims (paired over every seed and test case; Dice points):\n")
    print(claims_table(study))
    if args.figure:
        write_figure(study, args.figure)
        print(f"\nwrote {args.figure}")


if __name__ == "__main__":
    main()
