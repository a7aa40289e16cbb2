# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench bench-quick clean

# torch/torchvision are pinned here only: pip takes these builds from the machine's disk;
# pyproject.toml depends on ranges.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clearset demo --workspace demo-workspace

test: $(STAMP)
	$(PY) -m pytest -q -ra

# the unit tier: no Ray, no shared data, no browser (about a minute)
test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not ray and not integration and not browser and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run.py --all

bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

clean:
	rm -rf demo-workspace .pytest_cache
