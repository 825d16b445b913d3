#!/usr/bin/env bash
# Make Fashion-MNIST available: if it is not in $GENLAB_DATA or Debian's folder, install Debian's
# dataset-fashion-mnist when apt-get can be used; otherwise genlab downloads (and checks) it on first use.
set -uo pipefail
if [ -n "${GENLAB_DATA:-}" ] && ls "$GENLAB_DATA"/fashion_mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then
    exit 0
fi
if ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "get_data: installing Debian's dataset-fashion-mnist"
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
        || echo "get_data: apt-get failed; genlab will try to download Fashion-MNIST on first use"
fi
exit 0
