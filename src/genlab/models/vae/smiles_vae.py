"""The SMILES VAE of the MOSES baselines (Gómez-Bombarelli et al. 2018; Polykovskiy et al. 2020): a bidirectional GRU
encoder q(z | x), a GRU decoder p(x | z) over SMILES or SELFIES tokens, trained on the ELBO; latent interpolation. With
property conditions c it is a conditional VAE (Sohn et al. 2015; for molecules Lim et al. 2018): q(z | x, c), p(x | z, c)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import DECODING_OPTIONS
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.distributions import gaussian_kl_standard, standard_normal_log_prob
from genlab.models.property_conditions import (
    PROPERTIES_OPTION,
    PropertyConditioned,
    check_condition_config,
    condition_bins_param,
    condition_on_param,
)
from genlab.models.sequences import alive, longest, sample_sequences, sequence_log_probs, teacher_inputs
from genlab.models.vae.vae import kl_weight
from genlab.nn.functional import slerp
from genlab.noise import randn
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class SmilesVAEConfig(ModelConfig):
    """MOSES's VAE: a 1-layer bidirectional GRU encoder of 256 units, a 128-d latent, a 3-layer GRU decoder of 512
    units; the KL weight rises to 0.05 (their defaults; the CPU preset is smaller)."""

    name: str = param("smiles_vae", help="model name")
    embed: int = param(0, ge=0, help="token embedding width (0: the vocabulary size)")
    enc_hidden: int = param(256, ge=1, help="encoder GRU units per direction")
    latent_dim: int = param(128, ge=1, help="dimension of the latent z")
    dec_hidden: int = param(512, ge=1, help="decoder GRU units")
    dec_layers: int = param(3, ge=1, help="decoder GRU layers")
    dropout: float = param(0.2, ge=0, lt=1, help="dropout between decoder layers while training")
    beta: float = param(0.05, ge=0, help="weight of the KL term in the training loss (MOSES: 0.05); bounds always use 1")
    kl_warmup_steps: int = param(0, ge=0, help="raise the KL weight linearly from 0 to beta over this many training batches")
    condition_on: tuple[str, ...] = condition_on_param()
    condition_bins: int = condition_bins_param()

    def validate(self) -> None:
        check_condition_config(self)


@register_model("smiles_vae", SmilesVAEConfig)
class SmilesVAE(PropertyConditioned, GenerativeModel):
    """q(z | x) = N(mu(x), diag sigma^2(x)) from a bidirectional GRU over the tokens; p(z) = N(0, I);
    p(x | z) = prod_t p(x_t | x_<t, z), a GRU decoder whose initial state is W_h z and whose input at every step is
    [e(x_{t-1}); z]. The training loss is -E_q[log p(x|z)] + beta KL(q || p); `nll_bound` is the negative ELBO (k = 1)
    or the IWAE-k bound, in nats per sequence.

    With `condition_on` (a *_props dataset) it is a conditional VAE of molecular properties c (the condition vector of
    genlab.models.property_conditions), fed to both sides while the prior stays p(z) = N(0, I):
    q(z | x, c) = N(mu, diag sigma^2) with [mu; log sigma^2] = W [h_fwd; h_bwd] + W_q c; p(x | z, c) has the initial
    state W_h z + W_s c and the inputs [e(x_{t-1}) + W_e c; z]. The bounds are on -log p(x | c); sampling draws
    z ~ N(0, I) and decodes it with the requested properties (`properties=`, the others drawn from the training data).

    Example:
        >>> model = SmilesVAE(SmilesVAEConfig(latent_dim=32, dec_hidden=128, dec_layers=2), spec)
        >>> model.sample(16, generator=g, temperature=1.0)          # token ids (16, L)
        >>> model.interpolate(x0, x1, steps=8)                      # greedy decodes along the slerp (B, 8, L)
    """

    family = "vae"
    likelihood = "bound"
    bound_name = "ELBO / IWAE-k"
    importance_weighted = True

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (
            *DECODING_OPTIONS,
            SampleOption("z_temperature", float, "scale of the prior's standard deviation: z ~ N(0, T^2 I)"),
            PROPERTIES_OPTION,
        )

    def __init__(self, config: SmilesVAEConfig, spec: DataSpec):
        super().__init__(config, spec)
        if spec.encoding != "tokens" or len(spec.shape) != 1 or len(spec.vocab) < 2:
            raise ConfigError(f"the SMILES VAE models token sequences (L,); the data are {spec.encoding} of shape {spec.shape}")
        V, D, c = len(spec.vocab), config.latent_dim, config
        self.vocab_size, self.length = V, spec.shape[0]
        embed = c.embed or V
        self.embedding = nn.Embedding(V + 1, embed)  # row V: the decoder's start token
        self.encoder = nn.GRU(embed, c.enc_hidden, batch_first=True, bidirectional=True)
        self.to_latent = nn.Linear(2 * c.enc_hidden, 2 * D)
        self.z_to_state = nn.Linear(D, c.dec_layers * c.dec_hidden)
        self.decoder = nn.GRU(embed + D, c.dec_hidden, c.dec_layers, batch_first=True, dropout=c.dropout if c.dec_layers > 1 else 0.0)
        self.head = nn.Linear(c.dec_hidden, V)
        if c.kl_warmup_steps:
            # Training batches seen, for the KL warm-up; saved with the weights so a resumed run continues the ramp.
            self.register_buffer("kl_step", torch.zeros((), dtype=torch.long))
        width = self.init_property_conditions(config)
        if width:
            self.cond_latent = nn.Linear(width, 2 * D)  # W_q: q(z | x, c)
            self.cond_state = nn.Linear(width, c.dec_layers * c.dec_hidden)  # W_s: the decoder's initial state
            self.cond_input = nn.Linear(width, embed)  # W_e: added to every decoder input

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        vocab = ("<eos>", "C", "O", "N", "(", ")", "=", "1")
        small = {"embed": 8, "enc_hidden": 8, "latent_dim": 4, "dec_hidden": 16, "dec_layers": 2}
        return [
            (small, DataSpec((12,), encoding="tokens", vocab=vocab, modality="molecules")),
            ({**small, "dec_layers": 1, "kl_warmup_steps": 10}, DataSpec((6,), encoding="tokens", vocab=vocab[:4])),
        ]

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.length:
            raise ValueError(f"expected token ids of shape (B, {self.length}), got {tuple(x.shape)}")
        return x.long()

    # ------------------------------------------------------------------ q(z | x)
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x), each (B, latent_dim), from the GRU's last states in both directions, read at
        each sequence's own end (its <eos>); of q(z | x, c) for a property-conditional model, c from the properties
        y (B, 4) of the *_props datasets (y None: the mean of the training conditions)."""
        t = self._tokens(x)
        return self.posterior(t, self.conditions(y, len(t)))

    def posterior(self, t: torch.Tensor, f: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x, c) for token ids t (B, L) and condition vectors f (B, width) or None."""
        lengths = alive(t).sum(1).cpu()
        packed = pack_padded_sequence(self.embedding(t), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.encoder(packed)  # (2, B, enc_hidden): forward and backward final states
        stats = self.to_latent(torch.cat([h[0], h[1]], dim=1))
        mu, logvar = (stats if f is None else stats + self.cond_latent(f)).chunk(2, dim=1)
        return mu, logvar

    # ------------------------------------------------------------------ p(x | z)
    def _start(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.vocab_size, dtype=torch.long, device=self.device)

    def _initial_state(self, z: torch.Tensor, f: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        h = self.z_to_state(z) if f is None else self.z_to_state(z) + self.cond_state(f)
        return h.view(len(z), c.dec_layers, c.dec_hidden).transpose(0, 1).contiguous()

    def decoder_log_probs(self, t: torch.Tensor, z: torch.Tensor, f: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_s | x_<s, z) per position (B, L) by teacher forcing; log p(x_s | x_<s, z, c) with condition vectors f."""
        T = longest(t)
        e = self.embedding(teacher_inputs(self._start(len(t)), t, T))
        if f is not None:
            e = e + self.cond_input(f)[:, None]
        h, _ = self.decoder(torch.cat([e, z[:, None].expand(-1, T, -1)], dim=-1), self._initial_state(z, f))
        return sequence_log_probs(self.head(h), t)

    def step(
        self, tok: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decoder step: previous tokens (n,), (hidden, z) and the condition input W_e c (n, embed) of a
        property-conditional model -> next-token logits (n, V) and the new state."""
        h, z = state
        e = self.embedding(tok) if cond is None else self.embedding(tok) + cond
        out, h = self.decoder(torch.cat([e, z], dim=-1)[:, None], h)
        return self.head(out[:, 0]), (h, z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, generator: torch.Generator | None = None, properties: object = None, **decoding) -> torch.Tensor:
        """Token ids (n, L) decoded from latents z (n, latent_dim), with the decoding options of `sample`
        (greedy with top_k=1); a property-conditional model decodes p(x | z, c) for the `properties` of `sample`."""
        f = self.sample_conditions(properties, len(z), generator)
        state = (self._initial_state(z, f), z)
        step = self.step if f is None else functools.partial(self.step, cond=self.cond_input(f))
        return sample_sequences(step, self._start(len(z)), self.length, state, generator=generator, **decoding)

    # ------------------------------------------------------------------ objectives
    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """-E_q[log p(x|z)] + beta KL(q(z|x) || N(0, I)) per sequence, batch mean, one reparameterised sample."""
        t = self._tokens(batch["x"])
        f = self.batch_conditions(batch)
        mu, logvar = self.posterior(t, f)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = -self.decoder_log_probs(t, z, f).sum(1)
        kl = gaussian_kl_standard(mu, logvar).sum(1)
        weight = kl_weight(self)
        return {
            "loss": (recon + weight * kl).mean(),
            "nll_bound": (recon + kl).mean().detach(),
            "recon": recon.mean().detach(),
            "kl": kl.mean().detach(),
        }

    @torch.no_grad()
    def nll_bound(
        self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Upper bound on -log p(x) per sequence (B,), nats: -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x)
        (Burda et al. 2016); k = 1 is the negative ELBO. A property-conditional model bounds -log p(x | c), c from the
        properties y (B, 4) (y None: the mean of the training conditions)."""
        if k < 1:
            raise ValueError(f"k must be >= 1 importance samples, got {k}")
        t = self._tokens(x)
        f = self.conditions(y, len(t))
        mu, logvar = self.posterior(t, f)
        B, D = mu.shape
        log_w = []
        for _ in range(k):
            eps = randn((B, D), mu, generator)
            z = mu + torch.exp(0.5 * logvar) * eps
            log_px_z = self.decoder_log_probs(t, z, f).sum(1)
            log_pz = standard_normal_log_prob(z).sum(1)
            log_qz = (standard_normal_log_prob(eps) - 0.5 * logvar).sum(1)
            log_w.append(log_px_z + log_pz - log_qz)
        return math.log(k) - torch.logsumexp(torch.stack(log_w, dim=1), dim=1)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        z_temperature: float = 1.0,
        properties: object = None,
        **kwargs,
    ) -> torch.Tensor:
        """n token sequences (n, L): z ~ N(0, z_temperature^2 I), then tokens drawn from p(x | z) one per step. A
        property-conditional model takes `properties`: "qed=0.9,logp=2.5", {"qed": 0.9}, or values (K,) / (n, K) in
        condition_on order; properties not requested are drawn from the training data."""
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        z = z_temperature * randn((n, self.config.latent_dim), self.head.weight, generator)
        return self.decode(z, generator=generator, properties=properties, temperature=temperature, top_k=top_k, top_p=top_p)

    @torch.no_grad()
    def interpolate(
        self,
        x0: torch.Tensor,
        x1: torch.Tensor,
        steps: int = 8,
        spherical: bool = True,
        y0: torch.Tensor | None = None,
        y1: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Greedy decodes (B, steps, L) along the path between the posterior means of x0 and x1 (great circle, or a
        line with spherical=False). A property-conditional model encodes each end with its properties y0, y1 (B, 4)
        (None: the training mean) and decodes along the line between their property values."""
        mu0, _ = self.encode(x0, y0)
        mu1, _ = self.encode(x1, y1)
        s = torch.linspace(0, 1, steps, dtype=mu0.dtype, device=mu0.device)
        z = slerp(mu0, mu1, s) if spherical else mu0[:, None] + s[None, :, None] * (mu1 - mu0)[:, None]
        v0, v1 = self.dataset_conditions(y0, len(x0)), self.dataset_conditions(y1, len(x1))
        values = None if v0 is None else (v0[:, None] + s[None, :, None].to(v0) * (v1 - v0)[:, None]).flatten(0, 1)
        return self.decode(z.flatten(0, 1), top_k=1, properties=values).view(len(x0), steps, self.length)
