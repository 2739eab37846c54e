# make demo: set up .venv on first use and run the shipped demo scenario.
# make test: set up .venv on first use and run the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/frontier-jax sweep sweeps/demo.toml --out results/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=25 tests

lint: $(STAMP)
	$(BIN)/ruff check frontier_jax tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py --json

clean:
	rm -rf $(VENV) results
