#!/usr/bin/env bash
# The demo: set up, fetch Fashion-MNIST, train the default VAE for 3 minutes on CPU, then write
# samples, the loss curve and the test-set likelihood into runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get_data.sh
G=".venv/bin/python -m genlab"
$G train configs/vae/vae_fmnist.toml train.max_time=180 --run runs/demo
$G sample runs/demo --n 100 --out runs/demo/samples.png
$G eval runs/demo eval.n_examples=2000 eval.iwae_k=100
echo "demo: samples runs/demo/samples.png, loss curve runs/demo/loss.png, metrics runs/demo/metrics.jsonl and runs/demo/eval.json"
