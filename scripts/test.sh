#!/usr/bin/env bash
# The test suite: set up, fetch the data the data tests read, lint and check formatting, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get_data.sh
bash scripts/setup_browser.sh
.venv/bin/python -m ruff check src tests bench scripts
.venv/bin/python -m ruff format --check src tests bench scripts
.venv/bin/python -m pytest "$@"
