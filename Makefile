# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint bench clean

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
	$(PY) bench/precision.py
	$(PY) bench/embed.py
	$(PY) bench/embed_cifar10.py
	$(PY) bench/audit_duplicates.py
	$(PY) bench/audit_cifar10n.py
	$(PY) bench/audit_multilabel.py
	$(PY) bench/audit_scale.py
	$(PY) bench/train_cifar10.py
	$(PY) bench/train_eval_cifar10.py
	$(PY) bench/train_variants.py
	$(PY) bench/train_compile.py
	$(PY) bench/robustness_cifar10.py
	$(PY) bench/curate_cifar10n.py --labels worse
	$(PY) bench/curate_cifar10n.py --labels clean --keep 0.3,0.5
	$(PY) bench/curate_scale.py
	$(PY) bench/scale.py
	$(PY) bench/label_issues_cnn.py
	$(PY) bench/curate_cifar10n.py --labels worse --recipe cifar-resnet8-fast --epochs 5 --budget iterations --strategies random,rs2 --seeds 2 --tag _iterations
	$(PY) bench/distill.py

clean:
	rm -rf demo-workspace .pytest_cache
