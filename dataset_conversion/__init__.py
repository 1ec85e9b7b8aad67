"""Converters from public lung CT datasets to nnU-Net raw datasets (installed as ``nnunet_kd.dataset_conversion``).

One module per dataset, each with a pure ``convert(...)`` function; the ``nnunet_kd`` subcommands are thin
wrappers around them:

- :mod:`.msd_lung` — MSD Task06_Lung (``nnunet_kd convert-msd-lung``).
- :mod:`.nsclc_radiomics` — NSCLC-Radiomics CT + RTSTRUCT (``nnunet_kd convert-nsclc``).
- :mod:`.lung_pet_ct_dx` (with :mod:`.lung_pet_ct_dx_annotations`) — Lung-PET-CT-Dx CT + box XMLs
  (``nnunet_kd convert-lung-pet-ct-dx``).
- :mod:`.raw_dataset` — shared output handling: atomic writes, manifest, ``dataset.json``, patient-grouped splits,
  lung crop, parallel cases. :mod:`.cli_options` — the subcommands' shared options.
"""
