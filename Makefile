# Two commands on a fresh machine (Python 3.11):  make demo   and   make test
# Each creates the local virtual environment .venv on first use: the CPU build of torch first
# (an unpinned torch would pull several GB of CUDA packages), then rlrec with its dev extras.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
RLREC := $(VENV)/bin/rlrec
STAMP := $(VENV)/.rlrec-installed
DEMO := runs/demo

.PHONY: install demo test lint typecheck clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(RLREC) demo --out $(DEMO) --overwrite

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP) typecheck
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs
