"""Re-exports the nnunet_kd trainer classes for nnU-Net's ``nnUNet_extTrainer`` lookup.

Imported by nnU-Net under the top-level name ``nnunet_kd_trainer_exports`` and purged after the lookup; the classes
themselves live in the installed package ``nnunet_kd.trainers`` (absolute import, no side effects).
"""

import nnunet_kd.trainers as _trainers

globals().update({_name: getattr(_trainers, _name) for _name in _trainers.__all__})
