#!/usr/bin/env bash
# The test suite: set up, fetch the data the data tests read (and the Debian audio tools the audio tests use), lint and check formatting, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get_molecules.sh
bash scripts/get_data.sh
bash scripts/setup_browser.sh
bash scripts/get_audio.sh --install
.venv/bin/python -m ruff check src tests bench scripts
.venv/bin/python -m ruff format --check src tests bench scripts
# scipy's matrix square root (FCD) with several OpenBLAS threads on busy cores is many times slower than with one.
OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest "$@"
