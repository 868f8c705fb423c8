# The README's commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
DEPS   := $(VENV)/.deps-installed
EXT_SOURCES := setup.py $(wildcard csrc/*.cpp csrc/*.h csrc/cpu/*.cpp csrc/cpu/*.h csrc/cuda/*.cu)
EXT    := $(VENV)/.ext-built
PYTEST_ARGS ?=

.PHONY: train test bench bench-smoke gpu-check cuda-compile-check clean

# A base Python that already has torch (e.g. a CUDA build) is reused through system site-packages.
$(BIN)/python:
	$(PYTHON) -m venv $$($(PYTHON) -c "import torch" >/dev/null 2>&1 && echo --system-site-packages) $(VENV)

$(DEPS): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" >/dev/null 2>&1 || $(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install setuptools wheel pybind11 ninja numpy
	$(BIN)/pip install --no-build-isolation -e ".[dev]"
	touch $@ $(EXT)

# Incremental rebuild of romp_fast._C after a change under csrc/ (ninja keeps build/).
$(EXT): $(EXT_SOURCES) | $(DEPS)
	$(BIN)/python setup.py -q build_ext --inplace
	touch $@

# The CPU default on synthetic data (about 10 minutes on 2 cores); TRAIN_ARGS adds key=value overrides.
train: $(DEPS) $(EXT)
	$(BIN)/python -m romp_fast.train $(TRAIN_ARGS)

test: $(DEPS) $(EXT)
	$(BIN)/python -m pytest -q tests $(PYTEST_ARGS)

bench: $(DEPS) $(EXT)
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest benchmarks -q --benchmark-disable-gc \
		--benchmark-json=bench.json --benchmark-columns=min,median,rounds $(PYTEST_ARGS)

# Every benchmark case once, untimed: agreement checks only (CI).
bench-smoke: $(DEPS) $(EXT)
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest benchmarks -q -m "not slow" --benchmark-disable $(PYTEST_ARGS)

cuda-compile-check: $(DEPS)
	bash scripts/check_cuda_compile.sh $(BIN)/python

gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf build romp_fast/_C*.so $(EXT)
