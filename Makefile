# Two entry points, both self-contained on a fresh clone:
#   make demo   create .venv, install, run the whole pipeline on the synthetic dataset, report
#   make test   create .venv, install, lint and run the tests
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install

$(BIN)/activate:
	python3 -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics show
	@echo "The study's report: reports/REPORT.md, and reports/REPORT.html with every image inline"

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest
