#!/usr/bin/env bash
# Create (or reuse) the virtual environment of nnunet-kd and install the project into it (editable, with tests).
#
#   NNUNET_KD_VENV  where the environment lives (default: ~/.cache/nnunet-kd/venv). It is reused across runs:
#                   pip only installs what is missing, so a second run takes seconds. The first run downloads
#                   PyTorch with its CUDA libraries (several GB): nnU-Net imports torchvision through timm, and
#                   PyPI's torchvision only works with PyPI's default torch (it runs fine on CPU).
#   PYTHON          interpreter used to create the environment (default: python3, must be >= 3.10).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NNUNET_KD_VENV:-$HOME/.cache/nnunet-kd/venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "nnunet-kd needs Python >= 3.10")'
    echo "[setup] creating virtual environment $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
fi
echo "[setup] installing nnunet-kd (editable) and its dependencies into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[test]" 2>&1 \
    | grep -v -e "is ignored: it is neither a file nor a directory" || true
"$venv/bin/python" -c "import nnunet_kd, nnunetv2, torch" \
    || { echo "[setup] the environment in $venv is broken; remove it and rerun" >&2; exit 1; }
