#!/usr/bin/env bash
# Start JupyterLab for the course, always with a token.
#
#   JUPYTER_TOKEN   required, at least 16 characters (make one: openssl rand -hex 24). Refused when
#                   empty or short: a notebook server runs any code for whoever reaches it.
#   JUPYTER_IP      default 127.0.0.1 (this machine only). docker-compose.yml sets 0.0.0.0, since
#                   Docker's port publishing reaches the container only there; it publishes the port
#                   on the host's 127.0.0.1 only. Binding 0.0.0.0 is announced below, every time.
#   JUPYTER_PORT    default 8888.
#
# The token reaches Jupyter through the JUPYTER_TOKEN environment variable, never the command line
# (where `ps` would show it), and Jupyter's log prints "?token=..." instead of it.
# Extra arguments go to `jupyter lab`; token, password, ip and port options are refused there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

token="${JUPYTER_TOKEN:-}"
ip="${JUPYTER_IP:-127.0.0.1}"
port="${JUPYTER_PORT:-8888}"

fail() {
    echo "start-jupyter: $*" >&2
    exit 64
}

if [[ -z "${token//[[:space:]]/}" ]]; then
    fail "JUPYTER_TOKEN is empty; refusing to start JupyterLab without a token.
  Set one in the environment or in .env, e.g.:  echo \"JUPYTER_TOKEN=\$(openssl rand -hex 24)\" >> .env"
fi
if (( ${#token} < 16 )); then
    fail "JUPYTER_TOKEN is ${#token} characters long; use at least 16 (openssl rand -hex 24)."
fi
for arg in "$@"; do
    case "${arg,,}" in
        *token* | *password* | --ip* | *.ip=* | --port* | *.port=*)
            fail "refusing the argument '${arg%%=*}': set JUPYTER_TOKEN, JUPYTER_IP and JUPYTER_PORT instead."
            ;;
    esac
done

case "${ip}" in
    127.0.0.1 | localhost | ::1) ;;
    0.0.0.0 | "*" | "" | ::)
        echo "start-jupyter: NOTE: JupyterLab listens on ALL interfaces (${ip:-all}:${port}) inside" \
            "this container, so that Docker's published port reaches it. Publish that port on" \
            "127.0.0.1 only (docker-compose.yml does); the token is still required." >&2
        ;;
    *)
        echo "start-jupyter: NOTE: JupyterLab listens on ${ip}:${port}, reachable from that" \
            "network; the token is still required." >&2
        ;;
esac

echo "start-jupyter: JupyterLab on http://127.0.0.1:${port}/lab?token=<your JUPYTER_TOKEN>" >&2
export JUPYTER_TOKEN="${token}"
exec jupyter lab \
    --no-browser \
    --ServerApp.ip="${ip}" \
    --ServerApp.port="${port}" \
    --ServerApp.port_retries=0 \
    --ServerApp.root_dir="${PWD}" \
    "$@"
