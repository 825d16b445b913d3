"""Molecular-property conditions (logP, QED, SA, MW; continuous or binned) of the token-sequence models: the condition
vector c of the conditional RNN of Kotsias et al. 2020, shared by the CharRNN, the token Transformer and the SMILES VAE,
with the training conditions a model keeps to fill in the properties a sampling request leaves out."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genlab.config import param
from genlab.data.molecule_properties import PROPERTY_HELP, PROPERTY_MEAN, PROPERTY_NAMES, check_property_names, normalize, parse_targets
from genlab.errors import ConfigError
from genlab.models.base import Batch, SampleOption

BANK = 2048  # training condition vectors a property-conditional model keeps, to draw conditions when none are requested
PROPERTIES_OPTION = SampleOption(
    "properties", str, "property targets of a property-conditional model, e.g. qed=0.9,logp=2.5 (others drawn from training data)"
)


def condition_on_param() -> Any:
    """The `model.condition_on` field of a model config (a tuple of property names, empty: no property conditions)."""
    return param((), help=f"molecular properties to condition on ({PROPERTY_HELP}); needs a *_props dataset")


def condition_bins_param() -> Any:
    """The `model.condition_bins` field of a model config."""
    return param(
        0, ge=0, le=64, help="0: condition on the normalised values; B > 0: on each value's bin among B of equal mass under N(0, 1)"
    )


def check_condition_config(config: Any) -> None:
    """A config's condition_on names known properties, once each, and is not combined with class conditioning."""
    check_property_names(config.condition_on, "model.condition_on")
    if config.condition_on and getattr(config, "conditional", False):
        raise ConfigError("model.conditional (classes) and model.condition_on (properties) cannot be combined; choose one")


class PropertyConditioned:
    """Mixin of a GenerativeModel conditioned on molecular properties (`config.condition_on`, `config.condition_bins`).

    The condition values v (n, K) are the properties named in condition_on; the model sees the condition vector
    c = z = (v - mean) / std (MOSES training statistics, genlab.data.molecule_properties), or with condition_bins = B
    the one-hot of each z_k's bin among B bins of equal N(0, 1) mass, (n, K * B). Training batches carry the properties
    of the *_props datasets as labels y (n, 4); a ring buffer of BANK training values (saved with the weights) supplies
    the properties a sampling request leaves out, drawn jointly, so a request for QED alone comes with realistic logP,
    SA and MW. Call `init_property_conditions(config)` in `__init__`; the harness reads `condition_names`,
    `condition_targets` and `dataset_conditions` (genlab.modalities.molecules)."""

    condition_names: tuple[str, ...] = ()

    def init_property_conditions(self, config: Any) -> int:
        """Reads condition_on and registers the bank; returns the width of c (0: a model without property conditions)."""
        check_condition_config(config)
        self.condition_names = tuple(config.condition_on)
        if not self.condition_names:
            return 0
        if self.conditional:
            raise ConfigError("model.conditional (classes) and model.condition_on (properties) cannot be combined; choose one")
        self.register_buffer("cond_bank", torch.zeros(BANK, len(self.condition_names)))
        self.register_buffer("cond_bank_seen", torch.zeros((), dtype=torch.long))
        return len(self.condition_names) * (config.condition_bins or 1)

    def dataset_conditions(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The condition values (n, K) of a property-conditional model from a batch's labels y (n, 4), the properties
        of the *_props datasets in PROPERTY_NAMES order (y None: the mean of the training conditions kept, so log_prob(x)
        is log p(x | mean properties)); None for any other model."""
        if not self.condition_names:
            return None
        if y is None:
            return self.condition_targets(None, n) if not int(self.cond_bank_seen) else self.cond_bank_mean().expand(n, -1)
        if y.dim() != 2 or y.shape != (n, len(PROPERTY_NAMES)) or not y.is_floating_point():
            got = "none" if not y.numel() else f"{tuple(y.shape)} {y.dtype}"
            raise ValueError(
                f"model.condition_on={list(self.condition_names)} needs each molecule's properties y ({n}, {len(PROPERTY_NAMES)}) "
                f"({', '.join(PROPERTY_NAMES)}), got {got}: train on a *_props dataset (data.name='moses_props' or 'smiles_file_props')"
            )
        return y[:, [PROPERTY_NAMES.index(k) for k in self.condition_names]].to(self.device, torch.float32)

    def condition_features(self, values: torch.Tensor) -> torch.Tensor:
        """Property values (n, K) -> the model's condition vector: z = (v - mean) / std, or with condition_bins = B the
        one-hot of z's bin among the B bins of equal N(0, 1) mass, (n, K * B)."""
        z = normalize(values, self.condition_names)
        B = self.config.condition_bins
        if not B:
            return z
        edges = torch.distributions.Normal(0.0, 1.0).icdf(torch.arange(1, B, device=z.device) / B)
        return nn.functional.one_hot(torch.bucketize(z, edges), B).flatten(1).to(z.dtype)

    def conditions(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The condition vectors c (n, width) of n data examples with labels y (see `dataset_conditions`); None for a
        model without property conditions."""
        values = self.dataset_conditions(y, n)
        return None if values is None else self.condition_features(values)

    def batch_conditions(self, batch: Batch) -> torch.Tensor | None:
        """The condition vectors c (n, width) of a training batch from its properties y (an error when it has none),
        whose values the bank keeps while training; None for a model without property conditions."""
        if not self.condition_names:
            return None
        values = self.dataset_conditions(batch.get("y", torch.empty(0)), len(batch["x"]))
        if self.training:
            self.remember_conditions(values)
        return self.condition_features(values)

    def condition_targets(self, properties: object, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The condition values (n, K) of n samples: the requested ones (see `parse_targets`), the others drawn jointly
        from the training conditions the model kept (their mean before training)."""
        seen = int(self.cond_bank_seen)
        if seen:
            rows = torch.randint(min(seen, BANK), (n,), generator=generator, device="cpu")
            out = self.cond_bank[rows.to(self.cond_bank.device)].clone()
        else:
            out = self.cond_bank.new_tensor([PROPERTY_MEAN[k] for k in self.condition_names]).expand(n, -1).clone()
        if properties is not None:
            for k, v in parse_targets(properties, self.condition_names, n).items():
                out[:, self.condition_names.index(k)] = v.to(out.device)
        return out

    def sample_conditions(self, properties: object, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The condition vectors c (n, width) of n samples asked for `properties` ("qed=0.9,logp=2.5", {"qed": 0.9}, or
        values (K,) / (n, K) in condition_on order; the others drawn from the bank); None for a model without property
        conditions, which refuses `properties`."""
        if not self.condition_names:
            if properties is not None:
                raise ConfigError(
                    f"properties= needs a property-conditional model (model.condition_on); this {type(self).__name__} has none"
                )
            return None
        return self.condition_features(self.condition_targets(properties, n, generator))

    def cond_bank_mean(self) -> torch.Tensor:
        """The mean (1, K) of the training conditions kept in the bank."""
        return self.cond_bank[: min(int(self.cond_bank_seen), BANK)].mean(0, keepdim=True)

    def remember_conditions(self, values: torch.Tensor) -> None:
        """Keep training condition values in a ring buffer of BANK rows (the batches are shuffled, so it holds a
        random sample of the training conditions); sampling draws unrequested properties from it."""
        with torch.no_grad():
            seen = int(self.cond_bank_seen)
            idx = (seen + torch.arange(len(values), device=values.device)) % BANK
            self.cond_bank[idx[-BANK:]] = values[-BANK:].to(self.cond_bank.dtype)
            self.cond_bank_seen += len(values)
