"""GAN: the losses against closed forms, the penalties on a linear critic, DiffAugment, spectral norm under EMA and
save/load, conditioning, truncation, bad input, the trainer's logs, and a short training that covers the 8-gaussian ring."""

import json
import math

import pytest
import torch

import genlab
from genlab import checkpoint as ckpt
from genlab.config import build, build_run_config
from genlab.errors import ConfigError
from genlab.models.gan.augment import color, cutout, diff_augment, translation
from genlab.models.gan.gan import GAN, GANConfig
from genlab.models.gan.losses import LOSSES, d_loss, g_loss, gradient_penalty, r1_penalty
from genlab.spec import DataSpec
from genlab.train.ema import EMA

IMG = DataSpec((1, 16, 16), num_classes=3)


def make(spec=IMG, **kw):
    torch.manual_seed(0)
    return GAN(build(GANConfig, {"name": "gan", "latent_dim": 8, "g_channels": [8, 8], "d_channels": [8, 8], **kw}, "model"), spec)


# ------------------------------------------------------------------------------------------------------ losses
def test_losses_match_closed_forms():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    bce = -(sig(real).log().mean() + (1 - sig(fake)).log().mean())
    assert torch.allclose(d_loss("nonsaturating", real, fake), bce) and torch.allclose(d_loss("minimax", real, fake), bce)
    assert torch.allclose(g_loss("minimax", fake), (1 - sig(fake)).log().mean())
    assert torch.allclose(g_loss("nonsaturating", fake), -sig(fake).log().mean())
    assert torch.allclose(d_loss("lsgan", real, fake), torch.tensor(0.5 * (1 + 4) / 2 + 0.5 * (0.25 + 9) / 2))
    assert torch.allclose(d_loss("wgan-gp", real, fake), fake.mean() - real.mean())
    assert torch.allclose(d_loss("hinge", real, fake), torch.tensor((0 + 2) / 2 + (1.5 + 0) / 2))
    assert torch.allclose(g_loss("hinge", fake), -fake.mean()) and torch.allclose(g_loss("lsgan", fake), 0.5 * (fake - 1).square().mean())
    # An indifferent critic (logit 0) is at the equilibrium value 2 log 2 of the original game.
    assert math.isclose(d_loss("minimax", torch.zeros(4), torch.zeros(4)).item(), 2 * math.log(2), rel_tol=1e-6)


def test_minimax_generator_loss_saturates_and_nonsaturating_does_not():
    # When D confidently rejects the fakes (logit -10), log(1 - D) has almost no gradient; -log D has slope -1.
    grads = {}
    for kind in ("minimax", "nonsaturating"):
        fake = torch.tensor([-10.0], requires_grad=True)
        g_loss(kind, fake).backward()
        grads[kind] = fake.grad.item()
    assert abs(grads["minimax"]) < 1e-4 and grads["nonsaturating"] == pytest.approx(-1.0, abs=1e-4)


def test_penalties_on_a_linear_critic():
    w = torch.tensor([3.0, 4.0])  # ||grad D|| = 5 everywhere
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    out, r1 = r1_penalty(critic, real)
    assert torch.allclose(out, real @ w) and r1.item() == pytest.approx(25.0)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0, rel=1e-5)


# ------------------------------------------------------------------------------------------------------ augmentation
def test_diffaugment_translation_cutout_color():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8) + 0.5  # strictly positive, so zeros mark padding / cutout
    t = translation(x)

    def shifted(img, dy, dx):  # img moved by (dy, dx) pixels, zeros elsewhere
        out = torch.zeros_like(img)
        src = img[:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
        out[:, max(0, dy) : 8 + min(0, dy), max(0, dx) : 8 + min(0, dx)] = src
        return out

    for i in range(64):  # each image is the original shifted by at most 1 pixel (1/8 of 8) each way
        assert any(torch.equal(t[i], shifted(x[i], dy, dx)) for dy in range(-1, 2) for dx in range(-1, 2))
    c = cutout(x)
    zeros = (c == 0).all(1).flatten(1).sum(1)
    assert (zeros <= 16).all() and (zeros >= 4).all()  # a 4x4 square, clipped at the border
    assert torch.equal(c[c != 0], x[c != 0])
    y = color(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    z = torch.zeros(2, 1, 8, 8, requires_grad=True)
    diff_augment(z, ("color", "translation", "cutout")).sum().backward()
    assert z.grad is not None  # differentiable: G learns through the augmentation


# ------------------------------------------------------------------------------------------------------ model
def test_phases_carry_n_critic_two_time_scales_and_betas():
    m = make(n_critic=3, d_lr_scale=4.0, g_lr_scale=0.5, adam_betas=[0.5, 0.999])
    d, g = m.phases()
    assert (d.name, d.steps, d.lr_scale, d.betas) == ("d", 3, 4.0, (0.5, 0.999))
    assert (g.name, g.steps, g.lr_scale) == ("g", 1, 0.5)
    assert {id(p) for p in d.params} == {id(p) for p in m.D.parameters()}


def test_generator_phase_builds_no_critic_weight_gradients():
    m = make()
    batch = {"x": torch.rand(4, *IMG.shape) * 2 - 1}
    m.loss(batch, "g")["loss"].backward()
    assert all(p.grad is None for p in m.D.parameters()) and all(p.requires_grad for p in m.D.parameters())
    assert any(p.grad is not None for p in m.G.parameters())


def test_spectral_norm_bounds_each_layer_and_survives_ema_and_save_load(tmp_path):
    m = make(spec=DataSpec((1, 16, 16)), regularizers=["spectral_norm"])
    with torch.no_grad():
        for p in m.D.parameters():
            p.mul_(10)
    x = torch.rand(4, 1, 16, 16)
    for _ in range(30):  # power iterations run in training forwards
        m.D(x)
    lin = m.D.linear
    assert torch.linalg.matrix_norm(lin.weight, ord=2).item() == pytest.approx(1.0, rel=1e-3)
    ema = EMA(m, 0.9)
    ema.update(m)
    m.eval()
    ema.model.eval()
    assert torch.allclose(ema.model.D(x), m.D(x), atol=1e-5)  # the EMA copy carries the u, v buffers
    ckpt.save_weights(tmp_path / "w.safetensors", m, {"model": "gan", "step": 0})
    other = make(spec=DataSpec((1, 16, 16)), regularizers=["spectral_norm"])
    ckpt.load_weights(tmp_path / "w.safetensors", other)
    other.eval()
    assert torch.equal(other.D(x), m.D(x))


# ------------------------------------------------------------------------------------------------------ PacGAN packing
VEC = DataSpec((2,), encoding="continuous")


def make_vec(**kw):
    torch.manual_seed(0)
    return GAN(build(GANConfig, {"name": "gan", "latent_dim": 4, "g_hidden": [16], "d_hidden": [16, 16], **kw}, "model"), VEC)


def test_packing_concatenates_consecutive_samples_and_d_sees_only_its_pack():
    m = make_vec(pack=3)
    assert m.D.features[0].in_features == 6  # D's input is 3 samples of 2 numbers
    x = torch.randn(12, 2, requires_grad=True)
    p = m.pack(x)
    assert p.shape == (4, 6)
    for j in range(4):
        assert torch.equal(p[j], torch.cat([x[3 * j], x[3 * j + 1], x[3 * j + 2]]))
    out = m.critic(x)
    assert out.shape == (4,) and torch.equal(out, m.D(p))
    for j in range(4):  # D's output for pack j depends on samples 3j .. 3j + 2 and on no other
        (g,) = torch.autograd.grad(out[j], x, retain_graph=True)
        mine = torch.zeros(12, dtype=torch.bool)
        mine[3 * j : 3 * j + 3] = True
        assert g[~mine].abs().max() == 0 and (g[mine].abs().sum(1) > 0).all()
    # Images: packs along channels, for both conv critics.
    for net in ("dcgan", "resnet"):
        mi = make(spec=DataSpec((3, 16, 16)), net=net, pack=2)
        xi = torch.randn(6, 3, 16, 16)
        pi = mi.pack(xi)
        assert pi.shape == (3, 6, 16, 16) and all(torch.equal(pi[j], torch.cat([xi[2 * j], xi[2 * j + 1]])) for j in range(3))
        assert mi.critic(xi).shape == (3,)


def test_packed_critic_phase_scores_real_packs_against_fake_packs_with_penalties_on_the_packs():
    m = make_vec(pack=2, regularizers=["r1", "gp"], loss="nonsaturating")
    x = torch.randn(8, 2)
    torch.manual_seed(5)
    out = m.loss({"x": x}, "d")
    # Brute force with the same noise: z is drawn first, then GP's mixing weights, one per pack.
    torch.manual_seed(5)
    z = torch.randn(8, 4)
    fake = m.generate(z).detach()
    e = torch.rand(4, 1)
    real_p, fake_p = m.pack(x), m.pack(fake)
    d_real, d_fake = m.D(real_p), m.D(fake_p)
    assert out["d_real"].item() == pytest.approx(d_real.mean().item(), rel=1e-5)
    assert out["d_fake"].item() == pytest.approx(d_fake.mean().item(), rel=1e-5)
    assert out["adv"].item() == pytest.approx(d_loss("nonsaturating", d_real, d_fake).item(), rel=1e-5)

    def sq_grad(v):  # ||grad of D at each packed input||^2
        v = v.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(m.D(v).sum(), v)
        return g.square().sum(1)

    assert out["r1"].item() == pytest.approx(sq_grad(real_p).mean().item(), rel=1e-5)
    gp = (sq_grad(e * real_p + (1 - e) * fake_p).sqrt() - 1).square().mean()
    assert out["gp"].item() == pytest.approx(gp.item(), rel=1e-5)
    g_out = m.loss({"x": x}, "g")
    assert g_out["d_fake"].numel() == 1 and torch.isfinite(g_out["loss"])


def test_packing_bad_input():
    m = make_vec(pack=4)
    with pytest.raises(ConfigError, match=r"model.pack=4: a batch of 6 .*train.batch_size.*multiple of 4"):
        m.loss({"x": torch.randn(6, 2)}, "d")
    with pytest.raises(ConfigError, match="model.pack=2 with model.conditional=true"):
        make(conditional=True, pack=2)
    with pytest.raises(ConfigError, match="model.pack"):
        build(GANConfig, {"name": "gan", "pack": 0}, "model")


def test_conditioning_reaches_both_players():
    m = make(conditional=True, net="resnet")
    m.eval()
    z = torch.randn(3, 8)
    a, b = m.generate(z, torch.tensor([0, 0, 0])), m.generate(z, torch.tensor([1, 1, 1]))
    with torch.no_grad():
        for p in m.D.out.embed.parameters():
            p.normal_()
        for bn in [mod for mod in m.G.modules() if hasattr(mod, "gain")]:
            bn.gain.weight.normal_()
        a, b = m.generate(z, torch.tensor([0, 0, 0])), m.generate(z, torch.tensor([1, 1, 1]))
    assert not torch.allclose(a, b)
    x = torch.rand(3, *IMG.shape)
    assert not torch.allclose(m.D(x, torch.tensor([0, 0, 0])), m.D(x, torch.tensor([2, 2, 2])))
    with pytest.raises(ValueError, match="class-conditional"):
        m.sample(3)


def test_truncation_pulls_samples_to_the_mean_latent():
    m = make(spec=DataSpec((2,), encoding="continuous"), g_hidden=[16], d_hidden=[16])
    m.eval()
    centre = m.generate(torch.zeros(1, 8))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    spread = {t: (m.sample(500, generator=g(), truncation=t) - centre).norm(dim=1).mean() for t in (1.0, 0.5, 0.1)}
    assert spread[0.1] < spread[0.5] < spread[1.0]
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ConfigError, match=r"truncation: expected a value in \(0, 1\]"):
            m.sample(2, truncation=bad)
    with pytest.raises(ConfigError, match="no option 'temperature'.*truncation"):
        m.sample(2, temperature=0.5)


def test_mixture_latent_draws_each_fixed_component_and_truncation_shrinks_within_it():
    """model.latent_components = K: z = c_k + psi * latent_std * eps with k uniform; the centres are saved with the weights."""
    vec = DataSpec((2,), encoding="continuous")
    m = make(spec=vec, g_hidden=[16], d_hidden=[16], latent_components=4, latent_std=0.05)
    c = m.latent_centres
    assert c.shape == (4, 8) and "latent_centres" in m.state_dict()
    for psi in (1.0, 0.3):
        z = m.latent(4000, c, torch.Generator().manual_seed(1), psi)
        d = torch.cdist(z, c)  # (n, K)
        dist, k = d.min(dim=1)
        counts = torch.bincount(k, minlength=4).float()
        assert (counts / 4000 - 0.25).abs().max() < 0.03, counts  # uniform over components
        # |z - c_k| / (psi * std) is chi with 8 degrees of freedom: mean ~ 2.74
        assert abs(dist.mean() / (psi * 0.05) - 2.74) < 0.1, dist.mean()
    z = m.latent(5, c)  # the trainer's path (no generator) draws from the same mixture
    assert torch.cdist(z, c).min(dim=1).values.max() < 0.05 * 8
    # a fresh model from another seed loads the centres and samples the same points
    other = GAN(m.config, vec)
    assert not torch.equal(other.latent_centres, c)
    other.load_state_dict(m.state_dict())
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    assert torch.equal(other.sample(16, generator=g()), m.sample(16, generator=g()))
    assert "latent_centres" not in make(spec=vec, g_hidden=[16], d_hidden=[16]).state_dict()


def test_interpolation_figure():
    m = make()
    figs = m.figures({"x": torch.zeros(16, *IMG.shape)})
    imgs, nrow = figs["interpolations"]
    assert imgs.shape == (80, *IMG.shape) and nrow == 10 and imgs.abs().max() <= 1


def test_diagnose_reports_a_critic_that_wins_outright():
    m = make(loss="nonsaturating")
    assert m.diagnose({"d/adv": 1.3, "g/loss": 0.8}) is None
    msg = m.diagnose({"d/adv": 0.004, "g/loss": 9.0})
    assert "divergence" in msg and "g/loss=9" in msg
    # Early on the critic may win briefly before the game settles: no warning before step 500.
    assert m.diagnose({"step": 200, "d/adv": 0.004, "g/loss": 9.0}) is None
    assert "divergence" in m.diagnose({"step": 500, "d/adv": 0.004, "g/loss": 9.0})
    w = make(loss="wgan-gp")
    assert w.diagnose({"d/adv": -500.0, "g/loss": 300.0, "d/d_real": 250.0, "d/d_fake": -300.0}).startswith("divergence")


# ------------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "override, match",
    [
        ("model.loss=hinj", "Did you mean: hinge"),
        ('model.regularizers=["spectral_nrom"]', "unknown name 'spectral_nrom'. Did you mean: spectral_norm"),
        ('model.augment=["colour"]', "Did you mean: color"),
    ],
)
def test_unknown_names_fail_before_training(override, match):
    with pytest.raises(ConfigError, match=match):
        build_run_config({"data": {"name": "fashion_mnist"}, "model": {"name": "gan"}, "train": {"max_steps": 1}}, [override])


def test_discriminator_too_small_for_the_image_size():
    with pytest.raises(ConfigError, match=r"too small for 64x64 images.*16x16.*give it 3 levels"):
        GAN(GANConfig(d_channels=(16, 32)), DataSpec((3, 64, 64)))
    with pytest.raises(ConfigError, match="cannot be halved 3 times"):
        GAN(GANConfig(d_channels=(16, 32, 64)), DataSpec((1, 28, 28)))
    with pytest.raises(ConfigError, match="needs class labels"):
        GAN(GANConfig(conditional=True), DataSpec((1, 28, 28)))
    with pytest.raises(ConfigError, match="DiffAugment works on images"):
        GAN(GANConfig(augment=("color",)), DataSpec((2,), encoding="continuous"))
    with pytest.raises(ConfigError, match="g_batch_norm=true is for the mlp generator"):
        GAN(GANConfig(g_batch_norm=True), DataSpec((1, 28, 28)))


def test_mlp_generator_batch_norm_normalises_in_training_and_uses_running_statistics_to_sample():
    gan = make(DataSpec((2,), encoding="continuous"), g_hidden=[32, 32], d_hidden=[16], g_batch_norm=True)
    bns = [m for m in gan.G.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 2 and all(lin.bias is None for lin in gan.G.modules() if isinstance(lin, torch.nn.Linear) and lin.out_features == 32)
    # Training mode: each hidden layer's pre-activations are standardised over the batch.
    seen = []
    hook = bns[0].register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    gan.G.train()
    gan.G(torch.randn(512, 8) * 5 + 3)
    hook.remove()
    assert torch.allclose(seen[0].mean(0), torch.zeros(32), atol=1e-5) and torch.allclose(
        seen[0].std(0, unbiased=False), torch.ones(32), atol=1e-3
    )
    # Sampling runs G in eval mode on the running statistics: a sample does not depend on the rest of its batch.
    z = torch.randn(6, 8)
    gan.G.eval()
    assert torch.allclose(gan.G(z)[:3], gan.G(z[:3]), atol=1e-6)
    gan.G.train()
    assert not torch.allclose(gan.G(z)[:3], gan.G(z[:3]), atol=1e-3)  # batch statistics: the batch matters
    a = gan.sample(6, generator=torch.Generator().manual_seed(1))
    assert gan.G.training and torch.equal(a, gan.sample(6, generator=torch.Generator().manual_seed(1)))


# ------------------------------------------------------------------------------------------------------ training
def test_trainer_logs_both_players_and_writes_interpolations(tmp_path):
    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "gan", "latent_dim": 8, "g_channels": [8], "d_channels": [8], "conditional": True, "n_critic": 2,
                  "regularizers": ["spectral_norm", "r1"], "augment": ["translation"]},
        "train": {"max_steps": 6, "batch_size": 16, "log_every": 3, "ema_decay": 0.9, "progress": False, "num_threads": 1},
    }  # fmt: skip
    res = genlab.train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    for k in ("d/loss", "d/adv", "d/d_real", "d/d_fake", "d/r1", "d/grad_norm", "g/loss", "g/d_fake", "g/grad_norm"):
        assert k in keys, k
    assert (tmp_path / "run" / "samples" / "interpolations.png").is_file()
    again = genlab.load(tmp_path / "run")
    x1, _ = genlab.sample(again, 6, seed=3)
    x2, _ = genlab.sample(res.model, 6, seed=3)
    assert torch.equal(x1, x2)


def test_short_training_covers_the_8_gaussian_ring(tmp_path):
    """2,000 steps of small MLPs (about 7 s; hinge, unpacked, no DRS): every mode of the ring gets high-quality samples
    (deterministic under the seed)."""
    from genlab.metrics.modes import model_mode_coverage

    cfg = {
        "data": {"name": "8gaussians"},
        "model": {"name": "gan", "loss": "hinge", "latent_dim": 16, "g_hidden": [64, 64], "d_hidden": [64, 64], "adam_betas": [0.5, 0.999]},
        "train": {"max_steps": 2000, "max_time": None, "batch_size": 256, "lr": 2e-3, "warmup_steps": 0, "ema_decay": 0.99,
                  "num_threads": 1, "progress": False},
    }  # fmt: skip
    res = genlab.train(cfg, run_dir=tmp_path / "ring")
    cov = model_mode_coverage(res.model, "8gaussians")
    assert cov["modes_covered"] == 8 and cov["high_quality"] > 0.4, cov
    assert LOSSES == ("minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge")
