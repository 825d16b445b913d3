"""`genlab eval` and `genlab report` work on a run of every family: one tiny run per family on 2D moons
(the PixelCNN on tiny binarised images), evaluated and put in one report."""

import json

import pytest

from genlab.cli import main

PRESETS = {
    "vae": ("configs/vae/vae_moons_toy2d.toml", []),
    "diffusion": ("configs/diffusion/ddpm_moons_toy2d.toml", []),
    "gan": ("configs/gan/gan_8gaussians_toy2d.toml", ["data.name=moons"]),
    "flow": ("configs/flow/nsf_checkerboard_toy2d.toml", ["data.name=moons"]),
    "autoregressive": (
        "configs/autoregressive/pixelcnn_binarized_fmnist.toml",
        ["data.n_train=128", "data.n_test=32", "model.channels=8", "model.n_layers=2", "train.n_samples=4"],
    ),
}


@pytest.mark.slow
def test_eval_and_report_on_every_family(tmp_path, capsys):
    from pathlib import Path

    root = Path(__file__).parents[2]
    runs = []
    for family, (preset, extra) in PRESETS.items():
        run = tmp_path / family
        common = ["train.max_steps=3", "train.max_time=none", "train.progress=false", "train.log_every=1"]
        if "toy2d" in preset:
            common += ["data.n_train=512", "data.n_test=256"]
        assert main(["train", str(root / preset), *common, *extra, "--run", str(run)]) == 0, family
        assert main(["eval", str(run), "eval.n_samples=64", "eval.n_examples=32"]) == 0, family
        ev = json.loads((run / "eval.json").read_text())
        assert ev["family"] == family
        if family != "gan":
            assert ev["likelihood"] in ("exact", "bound") and ev["bits_per_dim"] == ev["bits_per_dim"], family
        runs.append(str(run))
    out = tmp_path / "rep"
    assert main(["report", *runs, "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    for family in PRESETS:
        assert f"| {family} | {family} |" in md, family  # run name, then the family column
