"""Benchmark: VAEs on Fashion-MNIST at fixed CPU budgets — genlab's presets against pythae's VAE.

Each contender trains for the same wall-clock budget in its own process (so peak memory is its
own), with the same number of threads. Then, on the test split: ELBO and IWAE-k NLL (nats per
image for binarised data, bits/dim for 8-bit data, genlab's convention) and FID/KID against the
test set with genlab's Fashion-MNIST feature network. pythae (optional: `pip install pythae`)
can only express Bernoulli (BCE) or unit-variance Gaussian (MSE) decoders, so the like-for-like
row is binarised Fashion-MNIST with a Bernoulli decoder on both sides; the default 8-bit preset
is reported beside it.

    python bench/vae_fmnist.py                       # budgets 120 s and 600 s, 2 threads
    python bench/vae_fmnist.py --budgets 60 --n-eval 500 --iwae-k 100   # a quick look
    python bench/vae_fmnist.py --budgets 120 --contenders binarized --set model.prior=mog \
        --out /tmp/screen.json                       # screen one setting of the binarised preset
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import in_process, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]


def train_genlab(preset: str, budget: float, threads: int, run_dir: str, overrides: tuple[str, ...], queue: mp.Queue) -> None:
    import genlab
    from genlab.train.curves import read_metrics

    torch.set_num_threads(threads)
    res = genlab.train(
        ROOT / preset,
        [*overrides, f"train.max_time={budget}", f"train.num_threads={threads}", "train.progress=false"],
        run_dir=run_dir,
        resume="never",
    )
    rows = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if "loss" in r]
    ips = res.step * genlab.build_run_config(ROOT / preset, list(overrides)).train.batch_size / res.elapsed
    queue.put(
        {"steps": res.step, "seconds": res.elapsed, "images_per_s": ips, "peak_rss_mb": peak_rss_mb(), "final_loss": rows[-1]["loss"]}
    )


def _fmnist_uint8(split: str) -> torch.Tensor:
    from genlab.config import DataConfig
    from genlab.data import load_dataset

    ds, _ = load_dataset(DataConfig(name="fashion_mnist", dequantize=False), split)
    return ds.x


def train_pythae(budget: float, threads: int, out: str, queue: mp.Queue) -> None:
    """pythae's VAE with its default MLP encoder/decoder and BCE, on dynamically binarised data."""
    from pythae.data.datasets import DatasetOutput
    from pythae.models import VAE, VAEConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_train = _fmnist_uint8("train")
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=32, reconstruction_loss="bce"))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    steps, t0, B = 0, time.perf_counter(), 128
    perm = torch.randperm(len(x_train), generator=g)
    pos = 0
    while time.perf_counter() - t0 < budget:
        if pos + B > len(perm):
            perm, pos = torch.randperm(len(x_train), generator=g), 0
        xb = x_train[perm[pos : pos + B]].float() / 255
        pos += B
        xb = (torch.rand(xb.shape, generator=g) < xb).float()  # dynamic binarisation
        loss = model(DatasetOutput(data=xb)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    seconds = time.perf_counter() - t0
    torch.save(model.state_dict(), out)
    queue.put(
        {"steps": steps, "seconds": seconds, "images_per_s": steps * B / seconds, "peak_rss_mb": peak_rss_mb(), "final_loss": float(loss)}
    )


@torch.no_grad()
def pythae_bounds(state_path: str, x_int: torch.Tensor, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image -ELBO and IWAE-k bound (nats) of the pythae model under the Bernoulli likelihood, and 10k samples."""
    from pythae.models import VAE, VAEConfig

    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=32, reconstruction_loss="bce"))
    model.load_state_dict(torch.load(state_path, weights_only=True))
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(x_int.shape, generator=g) < x_int.float() / 255).float()
    elbo, iwae = [], []
    for xb in x.split(50):
        enc = model.encoder(xb)
        mu, logvar = enc.embedding, enc.log_covariance
        std = (0.5 * logvar).exp()
        logw = []
        for kk in range(0, k, 100):
            c = min(100, k - kk)
            eps = torch.randn((c, *mu.shape), generator=g)
            z = mu + std * eps  # (c, B, D)
            p = model.decoder(z.flatten(0, 1)).reconstruction.view(c, len(xb), -1).clamp(1e-6, 1 - 1e-6)
            xf = xb.flatten(1)
            log_px = (xf * p.log() + (1 - xf) * (1 - p).log()).sum(-1)
            log_pz = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_qz = (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - 0.5 * logvar).sum(-1)
            logw.append(log_px + log_pz - log_qz)
        logw = torch.cat(logw)  # (k, B)
        elbo.append(-logw[0] if k == 1 else -logw.mean(0))
        iwae.append(math.log(k) - torch.logsumexp(logw, 0))
    z = torch.randn((10_000, 32), generator=torch.Generator().manual_seed(1))
    samples = model.decoder(z).reconstruction.view(-1, 1, 28, 28) * 2 - 1  # Bernoulli means in [-1, 1]
    return torch.cat(elbo), torch.cat(iwae), samples


def sample_quality(samples: torch.Tensor) -> dict:
    from genlab.metrics import kid
    from genlab.metrics.feature_nets import extract_features, get_feature_net, reference_stats
    from genlab.metrics.fid import fid_from_stats

    net = get_feature_net("fashion_mnist")
    ref = reference_stats("fashion_mnist", "test", "fashion_mnist")
    feats = extract_features(net, samples)
    k_mean, k_std = kid(ref["features"], feats)
    return {"fid": fid_from_stats(feats, ref["mu"], ref["sigma"]), "kid": k_mean, "kid_std": k_std}


def genlab_eval(run_dir: str, n_eval: int, k: int) -> dict:
    import genlab

    # The likelihoods only: the sample metrics are computed below, the same way for every contender.
    ev = genlab.evaluate(run_dir, [f"eval.n_examples={n_eval}", f"eval.iwae_k={k}", "eval.sample_metrics=false"])
    model = genlab.load(run_dir)
    x, _ = genlab.sample(model, 10_000, seed=1)
    return {
        "elbo_nats": ev["elbo"]["nll_bound"],
        "iwae_nats": ev["nll_bound"],
        "elbo_bpd": ev["elbo"]["bits_per_dim"],
        "iwae_bpd": ev["bits_per_dim"],
        **sample_quality(x),
        "samples": x[:64],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[120, 600], help="training seconds per contender")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=1000, help="test images for the likelihood bounds")
    ap.add_argument("--iwae-k", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vae_fmnist.json"))
    ap.add_argument("--skip-pythae", action="store_true", help="the same as leaving pythae out of --contenders")
    ap.add_argument(
        "--contenders",
        nargs="+",
        choices=["8bit", "binarized", "pythae"],
        default=["8bit", "binarized", "pythae"],
        help="which rows to train: genlab's 8-bit preset, genlab's binarised preset, pythae's VAE",
    )
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for genlab's binarised preset (screening)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    outdir = Path(a.out).parent
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    from genlab.modalities.image import save_image_grid

    tag = f" [{' '.join(a.set)}]" if a.set else ""
    genlab_rows = [
        ("8bit", "genlab vae_fmnist (8-bit, logistic)", "configs/vae/vae_fmnist.toml", ()),
        ("binarized", f"genlab vae_binarized_fmnist (Bernoulli){tag}", "configs/vae/vae_binarized_fmnist.toml", tuple(a.set)),
    ]
    for budget in a.budgets:
        for key, name, preset, overrides in genlab_rows:
            if key not in a.contenders:
                continue
            run_dir = str(outdir / "runs" / f"{Path(preset).stem}_{int(budget)}s_{stamp}")
            tr = in_process(train_genlab, preset, budget, a.threads, run_dir, overrides)
            ev = genlab_eval(run_dir, a.n_eval, a.iwae_k)
            save_image_grid(ev.pop("samples"), outdir / f"{Path(preset).stem}_{int(budget)}s.png", nrow=8, scale=2)
            rows.append({"model": name, "budget_s": budget, **tr, **ev})
            print(json.dumps(rows[-1]), flush=True)
        if a.skip_pythae or "pythae" not in a.contenders:
            continue
        try:
            import pythae  # noqa: F401
        except ImportError:
            print("pythae is not installed (pip install pythae): skipping its rows", file=sys.stderr)
            continue
        state = str(outdir / f"pythae_vae_{int(budget)}s.pt")
        tr = in_process(train_pythae, budget, a.threads, state)
        x_test = _fmnist_uint8("test")[: a.n_eval]
        elbo, iwae, samples = pythae_bounds(state, x_test, a.iwae_k)
        q = sample_quality(samples)
        save_image_grid(samples[:64], outdir / f"pythae_vae_{int(budget)}s.png", nrow=8, scale=2)
        D = 784 * math.log(2)
        rows.append(
            {
                "model": "pythae VAE (MLP, BCE; binarised)",
                "budget_s": budget,
                **tr,
                "elbo_nats": float(elbo.mean()),
                "iwae_nats": float(iwae.mean()),
                "elbo_bpd": float(elbo.mean()) / D,
                "iwae_bpd": float(iwae.mean()) / D,
                **q,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    meta = {
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "n_eval": a.n_eval,
        "iwae_k": a.iwae_k,
        "fid": "genlab fashion_mnist feature net, 10,000 samples vs the 10,000 test images",
        "command": " ".join(sys.argv),
    }
    Path(a.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    hdr = f"| model | budget | steps | images/s | peak MB | -ELBO | IWAE-{a.iwae_k} | FID | KID |"
    print("\n" + hdr + "\n|" + " --- |" * 9)
    for r in rows:
        unit = "bits/dim" if "8-bit" in r["model"] else "nats"
        e, w = (r["elbo_bpd"], r["iwae_bpd"]) if unit == "bits/dim" else (r["elbo_nats"], r["iwae_nats"])
        print(
            f"| {r['model']} | {r['budget_s']:.0f} s | {r['steps']} | {r['images_per_s']:.0f} | {r['peak_rss_mb']:.0f} | "
            f"{e:.3f} {unit} | {w:.3f} {unit} | {r['fid']:.2f} | {r['kid']:.4f} |"
        )
    print(f"\n-> {a.out}")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
