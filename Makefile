# Two commands: `make demo` (set up, then run the main job) and `make test` (set up, then the tests).
# Set-up is idempotent: the virtual environment is reused until pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast micro wheelhouse-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: on a machine without CUDA this is the CPU build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,scienceworld,alfworld,cluster]'
	# openrlhf's wheel pins flash-attn, which cannot build without CUDA: its other
	# requirements are in pyproject.toml, openrlhf itself goes in without them.
	$(BIN)/pip install -q --no-deps openrlhf==0.11.2
	# alfworld 0.3.5 (the games' 0.3.x grammar) without its 3D-simulator requirements
	$(BIN)/pip install -q --no-deps alfworld==0.3.5
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/leafe method=leafe experiment=micro_demo

# Rebuild the micro model from its recipe (about 75 minutes on 2 cores) and ship it in leafe_recipe/micro_model/.
micro: $(STAMP)
	$(BIN)/python -m leafe_recipe.micro --commit

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The offline install route (scripts/wheelhouse.py, docs/gpu.md) for this Python: build the project's
# wheelhouse (needs network), install it with no index into a fresh environment that holds only torch
# (as a cluster's environment holds its own build), import the stack. Minutes: not part of `make test`.
WHEELHOUSE := build/wheelhouse
wheelhouse-check: $(STAMP)
	rm -rf $(WHEELHOUSE) build/wheelhouse-venv
	$(BIN)/python scripts/wheelhouse.py build $(WHEELHOUSE) --extras scienceworld,alfworld
	$(PYTHON) -m venv build/wheelhouse-venv
	build/wheelhouse-venv/bin/pip install -q torch==2.13.0
	$(BIN)/python scripts/wheelhouse.py install $(WHEELHOUSE) --python build/wheelhouse-venv/bin/python --editable .
