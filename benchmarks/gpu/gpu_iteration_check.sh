#!/usr/bin/env bash
# GPU check of the distillation step's cost: KD/MKD step time and peak memory relative to nnU-Net's own step, on the
# realistic CT plan (80x160x160, batch 2). Run it on a machine with a CUDA GPU and the project installed
# (`pip install -e .`):
#
#   bash benchmarks/gpu/gpu_iteration_check.sh [OUTPUT_FOLDER]     (default /tmp/gpu_iteration_check)
#
# Two parts, each under its own time limit, so the first table is written even if compilation runs long:
#   1. eager students, 10 interleaved rounds, peak memory, ATen call counts;
#   2. students and teachers compiled as the trainers compile them on CUDA, for the 1-teacher rows.
# The log goes to OUTPUT_FOLDER/gpu_iteration.log; on an H100 the two parts take about 3 and 4 minutes.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-${OUT:-/tmp/gpu_iteration_check}}"
mkdir -p "$out"
log="$out/gpu_iteration.log"
export PYTHONUNBUFFERED=1
cd "$repo/benchmarks/timing" || exit 1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"
    echo "== 1. eager students, CT plan"
    timeout 330 python3 bench_kd_iteration.py --plan ct --rounds 10 --device cuda --count-ops \
        --variants "KD 1 teacher" "MKD 1 teacher" "KD 2 teachers" "MKD 2 teachers" "KD 1 box-guided teacher" \
        "KD 1 teacher, teacher after the student" "teacher forward"
    echo "== 2. compiled students and teachers, CT plan"
    timeout 210 python3 bench_kd_iteration.py --plan ct --rounds 10 --device cuda --compile --no-memory \
        --variants "KD 1 teacher" "MKD 1 teacher" "teacher forward"
} 2>&1 | tee "$log"
