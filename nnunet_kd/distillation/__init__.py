"""Knowledge distillation from frozen teachers: everything the distillation trainers delegate to.

- :mod:`.spec` and :mod:`.teacher_identifiers`: which teachers a run uses (``kd_teachers.json``, ``--teacher`` text)
  and the hyper-parameters it overrides;
- :mod:`.frozen_teachers`: teachers checked against the student, loaded (``weights_only``), frozen and run;
- :mod:`.ct_normalization`: the student's CT-normalised patch converted exactly into a teacher's normalisation;
- :mod:`.feature_capture`: forward hooks that record the stages whose features are aligned;
- :mod:`.teacher_weights`: per-sample teacher weights and the fused teacher target;
- :mod:`.objective`: ``Seg + α·Mid + β·KL`` for one batch (:class:`~.objective.DistillationObjective`);
- :mod:`.distributed`: the adapters kept in step under DDP;
- :mod:`.epoch_log`: the distillation terms in nnU-Net's log and ``progress_kd.png``.

The losses themselves are in :mod:`nnunet_kd.losses`; the trainers in ``nnunet_kd.trainers``. This ``__init__``
imports nothing: import from the modules.
"""
