# modelfactory: `make run` runs the demo pipeline; `make test` runs the whole test suite.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run demo-data test install notebooks bench lab clean

run: demo-data ## create .venv if needed, register the penguins CSV, then run the demo pipeline for every demo model
	$(BIN)/modelfactory run

# The penguins demo trains on registered data, as a user's own CSV does (docs/OnboardingNewModel.md): this
# registers the CSV that the palmerpenguins package ships. Registering identical content again copies nothing.
PENGUINS_CSV = $(BIN)/python -c "from importlib.resources import files; print(files('palmerpenguins') / 'data' / 'penguins.csv')"

demo-data: $(STAMP) ## register the penguins demo's CSV in data/registry/ (once; a no-op after that)
	@$(BIN)/modelfactory data register penguins "$$($(PENGUINS_CSV))"

test: $(STAMP) ## run the whole suite (two workers): unit, notebooks (nbval), end-to-end, failure paths
	$(BIN)/python -m pytest tests -q -p no:cacheprovider -n 2 --dist loadscope

install: $(STAMP) ## create .venv and install the pinned environment plus this project

# compileall: these machines (and many images) set PYTHONDONTWRITEBYTECODE=1 and uv writes no bytecode,
# so without it every process, kernel and server start recompiles mlflow, sklearn and pandas (seconds each).
$(STAMP): requirements/lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/lock.txt
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

notebooks: demo-data ## re-execute notebooks/ in place, and the penguins examples in docs/examples/penguins/
	$(BIN)/modelfactory notebooks
	$(BIN)/modelfactory notebooks --model penguins

bench: $(STAMP) ## benchmarks: runner vs plain Python; endpoint vs bare score.py; batch scoring; 2M-row data; drift over 1M scored rows; CLI and endpoint start-up (prints ratios)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/data.py
	$(BIN)/python bench/monitor.py
	$(BIN)/python bench/cli.py
	$(BIN)/python bench/startup.py

# Containers and Azure ML compute instances run as root, which Jupyter refuses without --allow-root.
lab: $(STAMP) ## open the notebooks in JupyterLab (binds 127.0.0.1)
	cd notebooks && ../$(BIN)/jupyter lab --ip 127.0.0.1 $(LAB_ARGS) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

clean: ## remove the virtualenv and caches (runs/ and mlruns/ hold your results: delete those by hand)
	rm -rf $(VENV) .pytest_cache build src/*.egg-info

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
