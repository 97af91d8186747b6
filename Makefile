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

# The estimate times a few seconds of torch here against the committed demo timing; a failure of
# it never stops the demo.
demo: install
	-$(BIN)/python bench/stage_times.py --estimate
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc metrics show
	@echo "The study's report: reports/REPORT.md, and reports/REPORT.html with every image inline"

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=15
