# The two commands of the README. Each one creates .venv (if needed) and installs everything first.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup main test lint browser-deps

setup:
	bash scripts/setup_venv.sh

# Runs the main job on the embedded data (the standard profile: about 10 minutes on 2 CPU cores).
main: setup
	$(PY) -m pemd_tutorial

# Lint, unit tests, notebooks under nbval and the JupyterLab browser walkthrough.
test: setup browser-deps
	$(PY) -m ruff check .
	$(PY) -m pytest tests tutorials --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tutorials/nbval_sanitize.cfg -p no:cacheprovider

browser-deps:
	bash scripts/install_browser.sh

lint: setup
	$(PY) -m ruff check .
