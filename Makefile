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
# make test-min: the lowest declared version of every runtime dependency, and a fast subset of the
# tests that reaches every layer (data, training, objectives, evaluation, simulator, agents, CLI)
VENV_MIN ?= .venv-min
MIN_TESTS := $(addprefix tests/test_,$(addsuffix .py,cli_help cli_errors bad_inputs config \
	configs_dir outputs loaders prepare synthetic transitions encoders objectives conservative \
	metrics evaluator trainer sim_data sim_env sim_urm sim_cli online_agents online_train))

.PHONY: install demo test test-min lint typecheck clean

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

# Not part of CI: it installs an old torch from PyPI (a CUDA build, some GB) beside .venv.
test-min:
	test -x $(VENV_MIN)/bin/python || $(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install -q --upgrade pip
	$(PYTHON) .ci/min-requirements > $(VENV_MIN)/requirements-min.txt
	$(VENV_MIN)/bin/python -m pip install -q -r $(VENV_MIN)/requirements-min.txt pytest hypothesis matplotlib
	$(VENV_MIN)/bin/python -m pip install -q --no-deps -e .
	$(VENV_MIN)/bin/python -m pip freeze --exclude-editable > $(VENV_MIN)/installed.txt
	$(VENV_MIN)/bin/python -m pytest -q -p no:cacheprovider $(MIN_TESTS)

lint: $(STAMP) typecheck
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(VENV_MIN) runs
