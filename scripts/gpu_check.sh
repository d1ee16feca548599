#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and the project installed with a CUDA torch (`make` there):
# estimated vs measured memory and tokens/s for a profile, capped at its card's memory.
#   scripts/gpu_check.sh [--profile rtx4060] [--steps 6]
# At most 8 minutes; writes benchmarks/results/gpu_check_<profile>.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout 480 "$PY" scripts/gpu_check.py "$@"
