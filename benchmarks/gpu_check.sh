#!/usr/bin/env bash
# GPU check on a CUDA node with no registry, in one command (benchmarks/gpu_check.py says what it runs and prints).
#   here, once:  python benchmarks/gpu_check.py prepare iemocap     (or meld: one dataset a call fits in 64 MiB)
#   there:       OUT=<folder> bash benchmarks/gpu_check.sh [--seeds 0,1] [--workers N] [--budget S]
# with the repository and its .gpu_check folder copied over. Outputs: $OUT/summary.json, log.txt, the GPU metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python3 || command -v python)
exec "$PY" benchmarks/gpu_check.py run "$@"
