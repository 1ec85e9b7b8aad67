"""Assemble an exported dataset once every part is done: ``dataset.json``, provenance tables and the QC report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from nnunet_kd.atomic import TMP_INFIX, atomic_write_text
from nnunet_kd.errors import InputError
from nnunet_kd.pseudo_labels import layout
from nnunet_kd.pseudo_labels.export import read_request
from nnunet_kd.pseudo_labels.provenance import CaseRecord, provenance_csv, provenance_json
from nnunet_kd.pseudo_labels.qc import write_qc_report


def _summary(request: dict, records: list[CaseRecord]) -> dict:
    pseudo = [r for r in records if r.kind == "pseudo"]
    flags: dict[str, int] = {}
    for r in pseudo:
        for flag in r.flags:
            flags[flag] = flags.get(flag, 0) + 1
    return {"dataset": request["dataset"], "teachers": request["teachers"], "options": request["options"],
            "num_cases": len(records), "num_strong": len(records) - len(pseudo), "num_pseudo": len(pseudo),
            "flagged_cases": sum(1 for r in pseudo if r.flags), "flag_counts": dict(sorted(flags.items()))}


def dataset_labels(request: dict) -> dict[str, int]:
    """The exported dataset's ``labels``: the teachers' labels, plus ``ignore`` (the highest value, the one the
    export wrote on unsure voxels) when the export ran with ``ignore_uncertain`` or ``ignore_disagreement``."""
    labels = dict(request["labels"])
    options = request["options"]
    if (options.get("ignore_uncertain") or options.get("ignore_disagreement")) and "ignore" not in labels:
        labels["ignore"] = max(labels.values()) + 1
    return labels


def write_dataset_json(folder: Path, request: dict) -> None:
    """``dataset.json`` by nnU-Net's ``generate_dataset_json``, moved into place in one rename."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    teachers = ", ".join(t["name"] for t in request["teachers"])
    labels = dataset_labels(request)
    staging = Path(tempfile.mkdtemp(prefix=f".dataset_json{TMP_INFIX}", dir=folder))
    try:
        generate_dataset_json(
            str(staging), channel_names=request["channel_names"], labels=labels,
            num_training_cases=len(request["cases"]), file_ending=request["file_ending"],
            dataset_name=request["dataset"],
            description=f"nnunet-kd: strong cases with ground truth and weak cases pseudo-labelled by {teachers}",
            reference="nnunet_kd export-pseudo-labels (provenance/provenance.csv)",
        )
        os.replace(staging / "dataset.json", folder / "dataset.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def merge_export(folder: str | os.PathLike, qc: bool | None = None, progress: bool = True) -> dict:
    """Check that every case is done, then write ``dataset.json``, the provenance tables and the QC report
    (``qc``: default as the export's options say).

    Returns:
        The summary written into ``provenance.json``.

    Raises:
        InputError: not an export folder, or cases still missing (the message names them and the parts to rerun).
    """
    folder = Path(folder)
    request = read_request(folder)
    if request is None:
        raise InputError(f"{folder} is not a pseudo-label export (no {layout.REQUEST_FILE})")
    cases = [c["case"] for c in request["cases"]]
    missing = [c for c in cases if not layout.record_file(folder, c).is_file()]
    if missing:
        raise InputError(f"{len(missing)} of {len(cases)} case(s) are not exported yet ({', '.join(missing[:10])}); "
                         "run the missing part(s) of export-pseudo-labels first")
    layout.remove_stale_temporaries(folder)
    records = [CaseRecord.from_dict(json.loads(layout.record_file(folder, c).read_text())) for c in cases]
    summary = _summary(request, records)
    atomic_write_text(folder / layout.PROVENANCE / "provenance.csv", provenance_csv(records))
    atomic_write_text(folder / layout.PROVENANCE / "provenance.json", provenance_json(records, summary))
    options = request["options"]
    if options.get("qc", True) if qc is None else qc:
        page = write_qc_report(folder, records, options["qc_sample"], options["seed"], request["file_ending"],
                               dataset_labels(request).get("ignore"))
        if progress:
            print(f"QC report: {page}", flush=True)
    write_dataset_json(folder, request)
    if progress:
        print(f"dataset ready: {folder} ({summary['num_strong']} strong, {summary['num_pseudo']} pseudo-labelled, "
              f"{summary['flagged_cases']} flagged)", flush=True)
    return summary
