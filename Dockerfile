# JupyterLab with the course on a CUDA PyTorch base.
#   docker build -t qdlib .
#   docker run --gpus all -p 127.0.0.1:8888:8888 -v "$PWD/runs:/home/learner/qdlib/runs" qdlib
# JupyterLab listens inside the container on 0.0.0.0 so the published port reaches it; the port
# is published on 127.0.0.1 only, and a token is always required (printed in the logs).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

RUN useradd --create-home --shell /bin/bash learner
USER learner
WORKDIR /home/learner/qdlib
ENV PATH=/home/learner/.local/bin:$PATH \
    PIP_NO_CACHE_DIR=1

COPY --chown=learner:learner pyproject.toml README.md ./
COPY --chown=learner:learner qdlib ./qdlib
RUN python -m pip install --user -e '.[dev]'
COPY --chown=learner:learner . .

EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "notebooks/"]
