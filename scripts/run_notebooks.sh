#!/usr/bin/env bash
# Execute the tutorial notebooks in place (outputs saved), as committed in the repository.
#   bash scripts/run_notebooks.sh                      # all of tutorials/*.ipynb
#   bash scripts/run_notebooks.sh tutorials/01_*.ipynb  # some
# Uses the project's .venv; runs the notebooks in their default (non-quick) configuration unless
# PEMD_QUICK=1 is set. Afterwards check them with nbval as the test command does.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ "$#" -eq 0 ]; then set -- tutorials/*.ipynb; fi
for nb in "$@"; do
    echo "== $nb"
    start=$(date +%s)
    "$PY" -m jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 "$nb"
    echo "   executed in $(( $(date +%s) - start )) s"
done
