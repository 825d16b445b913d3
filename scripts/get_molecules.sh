#!/usr/bin/env bash
# Install what the molecules modality needs into .venv: RDKit, SELFIES, the `fcd` package (ChemNet weights for FCD)
# and the MOSES data files shipped in the `molsets` 0.3.1 wheel (moses/dataset/data/*.csv.gz, test*_stats.npz).
# fcd and molsets go in with --no-deps: fcd would otherwise be free to pull another torch, and molsets pins packages
# (pomegranate, an old pandas) that no longer build; genlab never imports `moses`, it only reads the wheel's files.
# Quiet and idempotent: a package already at the wanted version is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "get_molecules: no .venv here; run scripts/setup.sh first" >&2
    exit 1
fi
have() { "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" >/dev/null 2>&1; }
have_any() { "$PY" -c "import importlib.metadata as m; m.version('$1')" >/dev/null 2>&1; }
TORCH_BEFORE=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null || echo none)
# fcd's real dependencies (numpy, scipy, torch, rdkit): torch and numpy are already here; rdkit and scipy are added
# without upgrading what is installed.
for pkg in rdkit selfies scipy; do
    have_any "$pkg" || "$PY" -m pip install -q "$pkg"
done
have fcd 1.2.2 || "$PY" -m pip install -q --no-deps fcd==1.2.2
have molsets 0.3.1 || "$PY" -m pip install -q --no-deps molsets==0.3.1
TORCH_AFTER=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null || echo none)
if [ "$TORCH_BEFORE" != "$TORCH_AFTER" ]; then
    echo "get_molecules: torch changed from $TORCH_BEFORE to $TORCH_AFTER; reinstall torch with scripts/setup.sh" >&2
    exit 1
fi
