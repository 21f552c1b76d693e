# Two commands do everything on a fresh machine:
#   make demo   - set up, compress the bundled tiny.en, evaluate it, print the table
#   make test   - set up, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build first, from local disk: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	@if [ ! -d ../shared/data/speech ] && ! command -v espeak-ng >/dev/null; then \
		echo "../shared absent: installing espeak-ng to synthesize demo speech"; \
		apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null; fi
	$(BIN)/liteasr demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/tiny_en.py

clean:
	rm -rf $(VENV) .pytest_cache
