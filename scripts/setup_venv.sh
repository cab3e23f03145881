#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install everything the
# main job, the notebooks and the tests need. Safe to run again: it only installs what is missing.
#
# torch is installed first, pinned to 2.13.0, so that pip picks the CPU wheel that this kind of
# machine keeps on disk instead of resolving the range in pyproject.toml to a multi-GB CUDA build.
# Set PEMD_TORCH_SPEC to install another build (e.g. "torch==2.5.1" on a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${PEMD_TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[all]"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "virtual environment ready: $(.venv/bin/python -c 'import torch, sys; print(sys.version.split()[0], "torch", torch.__version__)')"
