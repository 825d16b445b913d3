"""VQ-VAE + autoregressive prior: the prior is a distribution over code grids and its samples follow it, the
prior's phase never moves the VQ-VAE, and the trainer starts the prior after its share of the budget."""

import itertools
import json

import pytest
import torch

import genlab
from genlab.models.autoregressive.two_stage import VQVAEPrior, VQVAEPriorConfig
from genlab.spec import DataSpec

SMALL = {"channels": [8], "blocks": 0, "codebook_size": 2, "code_dim": 4, "prior_layers": 2}
PRIORS = {
    "pixelcnn": {"prior": "pixelcnn", "prior_channels": 8, "prior_embed_dim": 4, "prior_first_kernel_size": 3},
    "transformer": {"prior": "transformer", "prior_d_model": 16, "prior_heads": 2},
}


def model(prior, **kw):
    torch.manual_seed(0)
    return VQVAEPrior(VQVAEPriorConfig(**{**SMALL, **PRIORS[prior], **kw}), DataSpec((1, 4, 4), num_classes=2)).eval()


@pytest.mark.parametrize("prior", ["pixelcnn", "transformer"])
def test_prior_is_a_distribution_over_code_grids_and_samples_follow_it(prior):
    m = model(prior, conditional=True).double()
    grids = torch.tensor(list(itertools.product([0, 1], repeat=4))).view(16, 2, 2)  # every 2x2 grid of 2 codes
    y = torch.ones(16, dtype=torch.long)
    lp = m.prior_log_prob(grids, y)
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-10)
    codes = m.sample_codes(3000, torch.ones(3000, dtype=torch.long), torch.Generator().manual_seed(0))
    idx = (codes.flatten(1) * torch.tensor([8, 4, 2, 1])).sum(1)
    freq = torch.bincount(idx, minlength=16).double() / 3000
    assert (freq - lp.exp()).abs().max() < 0.035


@pytest.mark.parametrize("prior", ["pixelcnn", "transformer"])
def test_prior_phase_leaves_the_vqvae_alone_and_the_bound_adds_up(prior):
    m = model(prior).train()
    x = torch.randint(0, 256, (4, 1, 4, 4)).float() / 127.5 - 1
    m.loss({"x": x}, phase="vqvae")  # first training batch initialises the codebook
    before = m.vqvae.quantizer.codebook.clone()
    out = m.loss({"x": x}, phase="prior")
    out["loss"].backward()
    assert all(p.grad is None for p in m.vqvae.parameters())
    assert torch.equal(before, m.vqvae.quantizer.codebook)
    phases = m.phases()
    assert [p.name for p in phases] == ["vqvae", "prior"] and phases[1].start_fraction == 0.5
    m.eval()
    codes = m.vqvae.encode(x)
    assert torch.allclose(m.nll_bound(x), m.vqvae.recon_nll(x) - m.prior_log_prob(codes))
    assert m.sample(3, generator=torch.Generator().manual_seed(0), temperature=0.8, top_k=1).shape == (3, 1, 4, 4)


def test_one_config_trains_the_vqvae_then_the_prior(tmp_path):
    cfg = {
        "data": {"name": "test_images", "dequantize": False},
        "model": {"name": "vqvae_prior", **SMALL, **PRIORS["transformer"], "prior_start": 0.5},
        "train": {"batch_size": 16, "max_steps": 8, "warmup_steps": 1, "log_every": 1, "progress": False, "n_samples": 4},
        "eval": {"batch_size": 64},
    }
    res = genlab.train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "vqvae/loss" in r]
    with_prior = [r["step"] for r in rows if "prior/loss" in r]
    assert res.step == 8 and with_prior and min(with_prior) >= 4 and len(with_prior) < len(rows)
    assert (tmp_path / "run" / "samples" / "final.png").is_file()
