# The two commands of the README are `make main` and `make test`. Each one creates .venv (if
# needed) and installs everything first.
VENV := .venv
PY := $(VENV)/bin/python
# Written when scripts/setup_venv.sh has installed everything; it lives in .venv (ignored by git), so
# a fresh clone or a deleted .venv installs again, and so does a change of pyproject.toml or of the
# script. The package is installed in editable mode: editing its code needs no reinstall.
# `make setup -B` (or deleting the stamp) forces one.
STAMP := $(VENV)/.pemd-installed
# `make check` fails an unmarked test whose setup or call takes longer than this (tests/duration_guard.py);
# `make check TEST_BUDGET_S=20` on a busy machine
TEST_BUDGET_S ?= 5
# the pytest options of the notebooks under nbval
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tutorials/nbval_sanitize.cfg
# `make notebooks NB=tutorials/02_cumsum_emd.py` re-executes one notebook
NB ?= tutorials/*.py

.PHONY: setup main test check lint notebooks browser-deps

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh
	touch $@

# Runs the main job on the embedded data (the standard profile: about 7 minutes on 2 CPU cores,
# 437 s measured: benchmarks/results/main_standard_cpu.md).
main: setup
	$(PY) -m pemd_tutorial

# Everything CI runs: lint, unit tests and docstring examples, the notebooks under nbval and the
# JupyterLab browser walkthrough (skipped with one line outside CI when no browser can be installed).
test: setup browser-deps
	$(PY) -m ruff check .
	$(PY) -m pytest tests tutorials pemd_tutorial data_utils --doctest-modules $(NBVAL) -p no:cacheprovider

# The inner loop: lint and the unit tests without the slow and browser ones (about 1 minute).
# One torch (OpenMP) thread and one ITK thread: the tests' tensors are small, and on a 2-core
# machine shared with other jobs the threads of a second pool spin waiting for a core (measured on
# a busy 2-core machine: 273 s with the default threads, 80 s with one torch thread, less still
# with one ITK thread for SimpleITK's pre-alignment).
check: setup
	$(PY) -m ruff check .
	OMP_NUM_THREADS=1 ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1 $(PY) -m pytest tests pemd_tutorial data_utils --doctest-modules -m "not slow and not browser" \
		-p no:cacheprovider -q --max-test-seconds=$(TEST_BUDGET_S)

# Sync every notebook with its py:percent twin (the newer file wins), then execute it in place.
notebooks: setup
	@for twin in $(NB); do \
		nb=$${twin%.py}.ipynb; \
		$(PY) -m jupytext --sync "$$twin" || exit 1; \
		echo "== executing $$nb"; \
		$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=900 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
		$(PY) -m jupytext --sync "$$twin" >/dev/null || exit 1; \
	done

browser-deps:
	bash scripts/install_browser.sh

lint: setup
	$(PY) -m ruff check .
