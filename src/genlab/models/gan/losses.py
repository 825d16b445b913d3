"""The adversarial losses on the critic's raw outputs (logits) and the penalties on its input gradients.

minimax / nonsaturating: Goodfellow et al. 2014 (D(x) = sigmoid(logit)); lsgan: Mao et al. 2017 (a=0, b=c=1);
wgan-gp: Gulrajani et al. 2017; hinge: Lim & Ye 2017, Miyato et al. 2018; R1: Mescheder et al. 2018.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge")

# The critic's loss at the game's equilibrium (D cannot tell real from fake), for the docs and diagnose().
EQUILIBRIUM_D_LOSS = {"minimax": 2 * 0.6931471805599453, "nonsaturating": 2 * 0.6931471805599453, "lsgan": 0.25, "hinge": 2.0}


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic's loss, to be minimised, from its outputs on real (B,) and generated (B,) examples.

    minimax/nonsaturating: -E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-l_real)] + E[softplus(l_fake)];
    lsgan: (1/2) E[(l_real - 1)^2] + (1/2) E[l_fake^2]; wgan-gp: E[l_fake] - E[l_real] (the penalty is added
    separately); hinge: E[relu(1 - l_real)] + E[relu(1 + l_fake)].
    """
    if kind in ("minimax", "nonsaturating"):
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "lsgan":
        return 0.5 * (real - 1).square().mean() + 0.5 * fake.square().mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; expected one of {', '.join(LOSSES)}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss, to be minimised, from the critic's outputs on generated examples (B,).

    minimax: E[log(1 - D(G(z)))] = -E[softplus(l)] (saturates when D rejects the fakes); nonsaturating:
    -E[log D(G(z))] = E[softplus(-l)]; lsgan: (1/2) E[(l - 1)^2]; wgan-gp and hinge: -E[l].
    """
    if kind == "minimax":
        return -F.softplus(fake).mean()
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1).square().mean()
    if kind in ("wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; expected one of {', '.join(LOSSES)}")


def _input_grad_sq_norm(critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic(x), ||grad_x critic(x)||^2 per example), with a graph through the gradient (double backward)."""
    x = x.detach().requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return out, grad.flatten(1).square().sum(1)


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(critic outputs on real, E[||grad_x D(x)||^2] at real x): the R1 penalty before its gamma / 2 weight."""
    out, sq = _input_grad_sq_norm(critic, real)
    return out, sq.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad D(x_hat)|| - 1)^2] at x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per example (WGAN-GP)."""
    e = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = e * real.detach() + (1 - e) * fake.detach()
    _, sq = _input_grad_sq_norm(critic, x_hat)
    return (sq.add(1e-12).sqrt() - 1).square().mean()
