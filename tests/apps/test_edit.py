"""`genlab edit` (SDEdit): a small strength keeps the input, full strength forgets it and samples the data distribution
(Gaussian data with the exact denoiser); class transfer with a conditional model from the CLI."""

import pytest
import torch

from _gaussian import GaussianDenoiser
from _models import tiny_diffusion_run
from genlab.apps.edit import edit, sdedit
from genlab.cli import main
from genlab.errors import ConfigError

MU = torch.tensor([0.5, -0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)


def test_strength_from_keeping_to_forgetting_the_input():
    den = GaussianDenoiser(MU, COV, sigma_max=100.0)
    x = torch.tensor([[3.0, -2.0]], dtype=torch.float64).repeat(4000, 1)
    low = sdedit(den, x, 0.02, steps=50, generator=torch.Generator().manual_seed(0))
    assert (low - x).abs().max() < 0.05
    mid = sdedit(den, x, 0.5, steps=50, generator=torch.Generator().manual_seed(0))
    full = sdedit(den, x, 1.0, steps=400, generator=torch.Generator().manual_seed(0))
    # Halfway the samples lie between the input and the data; at full strength they follow the data distribution.
    assert (mid.mean(0) - MU).norm() < (x[0] - MU).norm() and (mid.mean(0) - x[0]).norm() > 0.5
    assert (full.mean(0) - MU).abs().max() < 0.06 and (torch.cov(full.T) - COV).abs().max() < 0.1


def test_bad_strength():
    with pytest.raises(ConfigError, match="strength"):
        sdedit(GaussianDenoiser(MU, COV), torch.zeros(1, 2), 1.5)


def test_class_transfer_cli(tmp_path):
    run = tiny_diffusion_run(tmp_path / "run", conditional=True)
    out = tmp_path / "edit.png"
    assert (
        main(
            ["edit", str(run), "--n", "2", "--strength", "0.3,0.9", "--to-class", "1", "--guidance", "2", "--steps", "5", "--out", str(out)]
        )
        == 0
    )
    assert out.is_file()
    grid = edit(run, n=2, strengths=(0.5,), steps=4)
    assert grid.shape == (2, 2, 1, 8, 8) and grid.min() >= -1 and grid.max() <= 1
    with pytest.raises(ConfigError, match="to-class"):
        edit(run, n=1, to_class=9)
    assert main(["edit", str(run), "--to-class", "9", "--n", "1", "--out", str(out)]) == 2


def test_edit_takes_a_trained_model_as_it_takes_its_run(tmp_path):
    import genlab

    run = tiny_diffusion_run(tmp_path / "run")
    trained = genlab.train(genlab.load(run).run.config, run_dir=run).model  # the budget is spent: no more training
    assert torch.equal(edit(trained, n=2, strengths=(0.5,), steps=4), edit(run, n=2, strengths=(0.5,), steps=4))
