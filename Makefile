# Two commands on a fresh machine: `make run` (the main job, end to end) and `make test`.
# Both create .venv first, installing the CPU build of torch before anything that depends on it.
VENV ?= .venv
PORT ?= 5000
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow lint format ui

# The dev extra includes the cluster extra (Hydra's joblib and submitit launchers: tests run them).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: teacher then distilled student on the embedded simulator, logged to mlruns/.
run: $(STAMP)
	$(PY) src/train.py

## Fast tests (the default run); `make test-slow` runs the end-to-end ones behind the `slow` marker.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n auto

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## The MLflow UI over mlruns/ on 127.0.0.1:$(PORT) (`make ui PORT=5001`); prints the address to open.
ui: $(STAMP)
	$(PY) -m signdistill.ui --port $(PORT)
