#!/usr/bin/env bash
# Make Fashion-MNIST available: already found by genlab -> nothing to do; else Debian's package
# (dataset-fashion-mnist) when apt-get can be used; else genlab downloads it on first use.
set -uo pipefail
cd "$(dirname "$0")/.."
if .venv/bin/python -c "from genlab.data.idx import locate; locate('fashion_mnist', download=False)" >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "get_data: installing Debian's dataset-fashion-mnist"
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 || echo "get_data: apt-get failed; genlab will try to download the files"
fi
exit 0
