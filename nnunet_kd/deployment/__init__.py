"""Deploying a trained student: ONNX export checked against PyTorch, and nnU-Net's own prediction pipeline
(preprocessing, sliding window, resampling, export) running an ONNX Runtime session (``pip install
nnunet-kd[deploy]``)."""
