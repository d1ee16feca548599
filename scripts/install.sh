#!/usr/bin/env bash
# Install qdlib with every dependency at the lock's exact versions, each file checked against the
# lock's sha256: the one install recipe of the Makefile, the Dockerfile and the dev container.
#
#   PYTHON=.venv/bin/python bash scripts/install.sh requirements/lock-cpu.txt
#
# TORCH_LINKS (optional) is where pip finds a torch the index does not serve (the CPU build).
# --no-deps: the lock already names every package; pip resolves nothing and downloads nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=${1:?usage: scripts/install.sh requirements/lock-cpu.txt (or lock-cuda.txt)}
python=${PYTHON:-python3}
"$python" scripts/lock.py platform "$lock"
links=()
if [ -n "${TORCH_LINKS:-}" ]; then links=(--find-links "$TORCH_LINKS"); fi
"$python" -m pip install --require-hashes --no-deps "${links[@]}" -r "$lock"
"$python" -m pip install --no-deps --no-build-isolation -e .
"$python" -m pip install --no-deps -r requirements/offline-model.txt
"$python" scripts/lock.py check "$lock"
