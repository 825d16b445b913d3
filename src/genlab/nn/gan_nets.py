"""GAN networks: MLPs for vectors, DCGAN (Radford et al. 2016) and ResNet / SNGAN (Miyato et al. 2018) generators and
discriminators for images; class conditioning by conditional batch-norm in G (de Vries et al. 2017) and a projection
discriminator (Miyato & Koyama 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.embeddings import FourierFeatures


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every Linear / Conv1d / Conv2d weight in `module`, in place.

    torch's parametrisation: W / sigma(W) with sigma from one power iteration per training forward (buffers u, v);
    in eval mode the stored u, v are used as they are, so an eval forward changes nothing.
    """
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(m)
    return module


class CondBatchNorm(nn.Module):
    """BatchNorm whose gain and bias are looked up per class (conditional batch-norm); plain BatchNorm when K = 0."""

    def __init__(self, channels: int, num_classes: int = 0, dims: int = 2):
        super().__init__()
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        self.num_classes = num_classes
        self.bn = bn(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.bn(x)
        if not self.num_classes:
            return h
        shape = (len(x), -1) + (1,) * (x.dim() - 2)
        return h * self.gain(y).view(shape) + self.bias(y).view(shape)


class _Projection(nn.Module):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)>: the projection discriminator's output layer."""

    def __init__(self, features: int, num_classes: int = 0):
        super().__init__()
        self.linear = nn.Linear(features, 1, bias=False)  # a constant shift cancels in hinge / WGAN losses
        self.embed = nn.Embedding(num_classes, features) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)  # (B,)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return out


# ------------------------------------------------------------------------------------------------------- vectors
class MLPGenerator(nn.Module):
    """z (B, latent) [+ class embedding] -> x (B, out_dim): Linear-ReLU stacks, linear output.

    With `batch_norm`, each hidden layer is Linear (no bias) - BatchNorm - ReLU, PacGAN's 2D generator (Lin et al. 2018).
    """

    def __init__(self, latent_dim: int, out_dim: int, hidden: Sequence[int], num_classes: int = 0, batch_norm: bool = False):
        super().__init__()
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        layers: list[nn.Module] = []
        width = latent_dim * (2 if num_classes else 1)
        for h in hidden:
            if batch_norm:
                layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.ReLU()]
            else:
                layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """x (B, in_dim) -> logits (B,): Linear-LeakyReLU(0.2) stacks and a projection output.

    With `fourier` = F > 0 the input first goes through F random Fourier features (`FourierFeatures`, frequencies
    ~ N(0, fourier_scale^2) cycles per unit), which lets the critic resolve modes far narrower than the data's range.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], num_classes: int = 0, fourier: int = 0, fourier_scale: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = [FourierFeatures(in_dim, fourier, fourier_scale)] if fourier else []
        width = 2 * fourier if fourier else in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.features = nn.Sequential(*layers)
        self.out = _Projection(width, num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.features(x.flatten(1)), y)


# ------------------------------------------------------------------------------------------------------- DCGAN
class DCGANGenerator(nn.Module):
    """z -> Linear -> channels[-1] x (H/2^L) x (W/2^L), then L 4x4 stride-2 transposed convs (BN, ReLU) up to C x H x W, tanh.

    Transposed conv j outputs channels[j-1] (the last outputs the image), mirroring `DCGANDiscriminator`:
    (64, 128) on 28x28 is 128 x 7 x 7 -> 64 x 14 x 14 -> C x 28 x 28.
    """

    def __init__(self, latent_dim: int, out_channels: int, size: tuple[int, int], channels: Sequence[int], num_classes: int = 0):
        super().__init__()
        L = len(channels)
        self.base = (size[0] // 2**L, size[1] // 2**L)
        self.fc = nn.Linear(latent_dim, channels[-1] * self.base[0] * self.base[1])
        self.norms = nn.ModuleList([CondBatchNorm(channels[-1], num_classes)])
        self.ups = nn.ModuleList()
        for j in range(L - 1, -1, -1):
            out = channels[j - 1] if j > 0 else out_channels
            self.ups.append(nn.ConvTranspose2d(channels[j], out, 4, 2, 1))
            if j > 0:
                self.norms.append(CondBatchNorm(out, num_classes))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(z).view(len(z), -1, *self.base)
        for i, up in enumerate(self.ups):
            h = up(F.relu(self.norms[i](h, y)))
        return torch.tanh(h)


class DCGANDiscriminator(nn.Module):
    """C x H x W -> L 4x4 stride-2 convs (LeakyReLU 0.2) to channels[-1] x (H/2^L) x (W/2^L) -> Linear [+ projection] -> logit."""

    def __init__(self, in_channels: int, size: tuple[int, int], channels: Sequence[int], num_classes: int = 0):
        super().__init__()
        L = len(channels)
        convs: list[nn.Module] = []
        width = in_channels
        for c in channels:
            convs += [nn.Conv2d(width, c, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = c
        self.convs = nn.Sequential(*convs)
        self.linear = nn.Linear(width * (size[0] // 2**L) * (size[1] // 2**L), 1, bias=False)
        self.embed = nn.Embedding(num_classes, width) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.convs(x)  # (B, C_L, H/2^L, W/2^L)
        out = self.linear(h.flatten(1)).squeeze(1)
        if self.embed is not None:  # projection on the spatially summed features
            out = out + (self.embed(y) * h.sum((2, 3))).sum(1)
        return out


# ------------------------------------------------------------------------------------------------------- ResNet (SNGAN)
class GBlock(nn.Module):
    """BN-ReLU-up2-conv3-BN-ReLU-conv3, plus up2-conv1 shortcut (Miyato et al. 2018, appendix B)."""

    def __init__(self, cin: int, cout: int, num_classes: int = 0):
        super().__init__()
        self.bn1, self.bn2 = CondBatchNorm(cin, num_classes), CondBatchNorm(cout, num_classes)
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    """[ReLU]-conv3-ReLU-conv3-avgpool2, plus conv1-avgpool2 shortcut; the first block has no pre-activation."""

    def __init__(self, cin: int, cout: int, first: bool = False):
        super().__init__()
        self.first = first
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        s = F.avg_pool2d(self.skip(x), 2) if self.first else self.skip(F.avg_pool2d(x, 2))
        return h + s


class ResNetGenerator(nn.Module):
    """z -> Linear -> channels[-1] x (H/2^L) x (W/2^L) -> L up-blocks (block j ends at H/2^j with channels[j]) -> BN-ReLU-conv3 -> tanh."""

    def __init__(self, latent_dim: int, out_channels: int, size: tuple[int, int], channels: Sequence[int], num_classes: int = 0):
        super().__init__()
        L = len(channels)
        self.base = (size[0] // 2**L, size[1] // 2**L)
        self.fc = nn.Linear(latent_dim, channels[-1] * self.base[0] * self.base[1])
        widths = [channels[-1], *reversed(channels)]
        self.blocks = nn.ModuleList([GBlock(widths[i], widths[i + 1], num_classes) for i in range(L)])
        self.bn = CondBatchNorm(channels[0], num_classes)
        self.out = nn.Conv2d(channels[0], out_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(z).view(len(z), -1, *self.base)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.bn(h, y))))


class ResNetDiscriminator(nn.Module):
    """L down-blocks (block j maps H/2^j to H/2^(j+1) with channels[j]) -> ReLU -> global sum pool -> Linear [+ projection]."""

    def __init__(self, in_channels: int, channels: Sequence[int], num_classes: int = 0):
        super().__init__()
        widths = [in_channels, *channels]
        self.blocks = nn.Sequential(*[DBlock(widths[j], widths[j + 1], first=j == 0) for j in range(len(channels))])
        self.out = _Projection(channels[-1], num_classes)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum((2, 3))  # (B, C_L)
        return self.out(h, y)
