#!/usr/bin/env bash
# Set up the environment (scripts/setup_env.sh) and run the main job: the whole teacher-student chain on synthetic
# phantoms with the quick CPU profile (nnunet_kd pipeline). Rerunning continues where it stopped. Extra arguments go
# to `nnunet_kd pipeline`, e.g. `bash scripts/main_job.sh --full --device cuda`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NNUNET_KD_VENV:-$HOME/.cache/nnunet-kd/venv}"
bash "$repo/scripts/setup_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if [ "$#" -eq 0 ]; then set -- --quick; fi
exec "$venv/bin/nnunet_kd" pipeline -w "${NNUNET_KD_WORK:-$PWD/nnunet_kd_work}" "$@"
