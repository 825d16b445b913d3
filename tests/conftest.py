import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _models  # noqa: E402,F401  (registers the test-only models and data)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def gauss_cfg():
    """A tiny run config on the test images with the deterministic Gaussian model."""
    return {
        "data": {"name": "test_images"},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 32, "max_steps": 30, "lr": 0.05, "warmup_steps": 5, "log_every": 5, "ckpt_every": 10, "progress": False},
        "eval": {"batch_size": 64},
    }
