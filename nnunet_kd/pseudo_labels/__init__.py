"""Pseudo-label export: teacher ensemble + boxes -> a new nnU-Net raw dataset with provenance and visual QC.

Public entry points: :func:`export_pseudo_labels` (check inputs, export one part, merge a single part),
:func:`merge_export` (assemble a multi-part export), :class:`ExportOptions`, :class:`TeacherRequest`,
:func:`parse_teacher`. Array-level pieces: :mod:`.ensemble`, :mod:`.cleanup`, :mod:`.provenance`.
"""

from nnunet_kd.pseudo_labels.export import ExportOptions
from nnunet_kd.pseudo_labels.export_job import export_pseudo_labels
from nnunet_kd.pseudo_labels.merge import merge_export
from nnunet_kd.pseudo_labels.provenance import Thresholds
from nnunet_kd.pseudo_labels.teacher_requests import TeacherRequest, load_teacher_file, parse_teacher

__all__ = ["ExportOptions", "TeacherRequest", "Thresholds", "export_pseudo_labels", "load_teacher_file", "merge_export",
           "parse_teacher"]
