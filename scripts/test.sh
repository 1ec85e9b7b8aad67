#!/usr/bin/env bash
# Set up the environment (scripts/setup_env.sh) and run the whole test suite: unit, contract and integration
# tests (the integration tests run the real nnUNetv2_* commands on small synthetic phantoms, a few minutes on CPU).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NNUNET_KD_VENV:-$HOME/.cache/nnunet-kd/venv}"
bash "$repo/scripts/setup_env.sh"
cd "$repo"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$venv/bin/python" -m pytest "${@:-tests}"
