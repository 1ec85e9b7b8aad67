"""The end-to-end teacher-student pipeline (``nnunet_kd pipeline``)."""
