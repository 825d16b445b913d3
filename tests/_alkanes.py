"""A toy set for property-conditional molecule models: the alkane chains C_1..C_12, whose length alone sets the string,
its Crippen logP (rising with the length: 0.64 .. 4.9, the MOSES range) and its molecular weight. Use: `from _alkanes
import SPEC, alkane_logp, chain_batch, train_on_chains` (needs RDKit)."""

import torch

from genlab.data import molecule_properties as mp
from genlab.spec import DataSpec

L = 14
CHAINS = ["C" * k for k in range(1, 13)]
SPEC = DataSpec((L,), encoding="tokens", vocab=("<eos>", "C"), modality="molecules")


def alkane_mw(k: int) -> float:
    """The molecular weight of C_k H_(2k+2): 12.011 k + 1.008 (2k + 2)."""
    return 12.011 * k + 1.008 * (2 * k + 2)


def alkane_logp() -> torch.Tensor:
    """Crippen logP of C_0 (the empty string: 0) .. C_13, computed with RDKit."""
    return torch.tensor([0.0, *mp.smiles_properties([*CHAINS, "C" * 13])[:, 0].tolist()])


def chain_batch(lengths: torch.Tensor, logp: torch.Tensor) -> dict[str, torch.Tensor]:
    """The chains C_k of the given lengths as token rows x (n, L) with their properties y (n, 4): logP and MW (QED and
    SA left at 0)."""
    x = (torch.arange(L)[None] < lengths[:, None]).long()
    y = torch.zeros(len(lengths), 4)
    y[:, 0] = logp[lengths]
    y[:, 3] = torch.tensor([alkane_mw(int(k)) for k in lengths])
    return {"x": x, "y": y}


def train_on_chains(model: torch.nn.Module, steps: int, lr: float = 1e-2, batch_size: int = 32) -> torch.nn.Module:
    """`steps` Adam steps of the model's loss on batches of random chains C_1..C_12 (a fixed seed); the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    logp = alkane_logp()
    for _ in range(steps):
        loss = model.loss(chain_batch(torch.randint(1, 13, (batch_size,), generator=g), logp))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
