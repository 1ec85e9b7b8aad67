#!/usr/bin/env bash
# Issue 5's GPU iteration benchmark in one device call: KD/MKD step time and peak memory relative to nnU-Net's step.
#
#   here (once):     bash benchmarks/gpu_iteration_check.sh --fetch-wheels
#                    downloads the two wheels the device image lacks (nnunetv2, dynamic-network-architectures; every
#                    other import of the benchmark is in that image) into .whl/, which git ignores
#   on the device:   run(command="bash benchmarks/gpu_iteration_check.sh", carry=[".whl"], timeout_s=600)
#
# On the device it installs the wheels into /tmp/site, then runs (from benchmarks/, output in $OUT/gpu_iteration.log):
#   1. eager students, realistic CT plan (80x160x160, batch 2), 10 interleaved rounds, peak memory, ATen call counts;
#   2. students and teachers compiled as the trainers do on CUDA, for the 1-teacher rows.
# Each part has its own time limit, so the first part's table comes back even if compilation runs long. Session 3's
# H100 runs of the same commands took about 3 and 4 minutes.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
versions=(nnunetv2==2.8.1 dynamic_network_architectures==0.4.4)  # the versions this project is tested with

if [ "${1:-}" = "--fetch-wheels" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$repo/.whl" "${versions[@]}" && ls -l "$repo/.whl"
    exit
fi

out="${OUT:-/tmp/gpu_iteration_check}"
mkdir -p "$out"
log="$out/gpu_iteration.log"
compgen -G "$repo/.whl/*.whl" >/dev/null \
    || { echo "no wheels in $repo/.whl: run 'bash benchmarks/gpu_iteration_check.sh --fetch-wheels' here first" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$repo"/.whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$repo/benchmarks" || exit 1
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
