"""CharRNN, the MOSES baseline (Segler et al. 2018; Polykovskiy et al. 2020): an LSTM language model over SMILES or
SELFIES tokens, p(x) = prod_t p(x_t | x_<t), trained by teacher forcing and sampled token by token, carrying the LSTM
state (h_t, c_t) with temperature, top-k and top-p. With `condition_on`, it is conditioned on molecular properties
(logP, QED, SA, MW) through its initial state and an input added at every step, as the conditional RNN of Kotsias et
al. 2020 ("Direct steering of de novo molecular generation with descriptor conditional recurrent neural networks")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import DECODING_OPTIONS
from genlab.models.autoregressive.vocab import VocabularyBound
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.property_conditions import (
    PROPERTIES_OPTION,
    PropertyConditioned,
    check_condition_config,
    condition_bins_param,
    condition_on_param,
)
from genlab.models.sequences import alive, longest, sample_sequences, sequence_log_probs, teacher_inputs
from genlab.registry import register_model
from genlab.spec import DataSpec

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, n, hidden)


@dataclass
class CharRNNConfig(ModelConfig):
    """MOSES's CharRNN: 3 LSTM layers of 768 units, dropout 0.2 (their defaults; the CPU preset is smaller)."""

    name: str = param("charrnn", help="model name")
    hidden: int = param(768, ge=1, help="LSTM units per layer")
    n_layers: int = param(3, ge=1, help="stacked LSTM layers")
    embed: int = param(0, ge=0, help="token embedding width (0: the vocabulary size, as MOSES's one-hot-sized embedding)")
    dropout: float = param(0.2, ge=0, lt=1, help="dropout between LSTM layers while training")
    conditional: bool = param(False, help="class-conditional: the start token is the class")
    condition_on: tuple[str, ...] = condition_on_param()
    condition_bins: int = condition_bins_param()

    def validate(self) -> None:
        check_condition_config(self)


@register_model("charrnn", CharRNNConfig)
class CharRNN(PropertyConditioned, VocabularyBound, GenerativeModel):
    """log p(x | y) = sum_t log p(x_t | x_<t, y), exact, in nats, over token sequences up to and including the first
    <eos> (token 0); the last position can only be <eos>, so p is a distribution over strings of < L tokens.

    The input at step t is the embedding of x_{t-1}, with a start token (the class of a conditional model) at t = 0:
    h_t = LSTM(e(x_{t-1}), h_{t-1}), p(x_t | x_<t) = softmax(W h_t + b).

    Example:
        >>> spec = DataSpec((40,), encoding="tokens", vocab=("<eos>", "C", "O", "(", ")", "1", "c"), modality="molecules")
        >>> model = CharRNN(CharRNNConfig(hidden=256, n_layers=2), spec)
        >>> model.log_prob(x)                                      # (B,) nats
        >>> model.sample(16, generator=g, temperature=0.9, top_p=0.95)
    """

    family = "autoregressive"
    likelihood = "exact"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (*DECODING_OPTIONS, PROPERTIES_OPTION)

    def __init__(self, config: CharRNNConfig, spec: DataSpec):
        super().__init__(config, spec)
        if spec.encoding != "tokens" or len(spec.shape) != 1 or len(spec.vocab) < 2:
            raise ConfigError(
                f"CharRNN models token sequences (L,) over a vocabulary of >= 2 tokens; the data are {spec.encoding} of shape {spec.shape}"
            )
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        V = len(spec.vocab)
        self.vocab_size, self.length = V, spec.shape[0]
        n_starts = spec.num_classes if self.conditional else 1
        embed = config.embed or V
        # Rows 0..V-1 embed the tokens, rows V.. the start tokens.
        self.embedding = nn.Embedding(V + n_starts, embed)
        self.lstm = nn.LSTM(embed, config.hidden, config.n_layers, batch_first=True, dropout=config.dropout if config.n_layers > 1 else 0.0)
        self.head = nn.Linear(config.hidden, V)
        self.bind_vocabulary(spec.vocab)
        width = self.init_property_conditions(config)
        if width:
            # The conditions c set the initial state (h_0, c_0) of every layer and are added to every input embedding.
            self.cond_state = nn.Linear(width, 2 * config.n_layers * config.hidden)
            self.cond_input = nn.Linear(width, embed)

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        vocab = ("<eos>", "C", "O", "N", "(", ")", "=", "1")
        return [
            ({"hidden": 16, "n_layers": 2, "embed": 8}, DataSpec((12,), encoding="tokens", vocab=vocab, modality="molecules")),
            ({"hidden": 8, "n_layers": 1, "conditional": True}, DataSpec((6,), num_classes=3, encoding="tokens", vocab=vocab[:4])),
        ]

    def start(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        """The start-token row of each sequence (n,): V + class, or V."""
        y = self.class_labels(y, n)
        return torch.full((n,), self.vocab_size, dtype=torch.long, device=self.device) + (0 if y is None else y)

    # ------------------------------------------------------------- property conditions
    def initial_state(self, f: torch.Tensor) -> LSTMState:
        """(h_0, c_0), each (layers, n, hidden), from the condition vector f: h_0 = tanh(W_h f), c_0 = W_c f."""
        n, layers, hidden = len(f), self.config.n_layers, self.config.hidden
        h, c = self.cond_state(f).view(n, 2, layers, hidden).permute(1, 2, 0, 3)
        return torch.tanh(h).contiguous(), c.contiguous()

    # ------------------------------------------------------------- likelihood
    def conditionals(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_t | x_<t, y) for every position (B, L); 0 after a sequence's first <eos>. They sum to `log_prob`.
        For a property-conditional model y holds the properties (B, 4) of the *_props datasets."""
        if x.dim() != 2 or x.shape[1] != self.length:
            raise ValueError(f"expected token ids of shape (B, {self.length}), got {tuple(x.shape)}")
        t = x.long()
        T = longest(t)  # positions after every sequence's <eos> add nothing: run the LSTM that far only
        f = self.conditions(y, len(t))
        if f is None:
            h, _ = self.lstm(self.embedding(teacher_inputs(self.start(y, len(t)), t, T)))
        else:
            e = self.embedding(teacher_inputs(self.start(None, len(t)), t, T)) + self.cond_input(f)[:, None]
            h, _ = self.lstm(e, self.initial_state(f))
        return sequence_log_probs(self.head(h), t)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log P(x | y) per example, (B,), in nats."""
        return self.conditionals(x, y).sum(1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Negative log-likelihood per token (the tokens up to and including each first <eos>); `nll` per example."""
        t = batch["x"].long()
        self.batch_conditions(batch)  # checks the batch's properties and keeps them in the bank while training
        nll = -self.conditionals(t, batch.get("y")).sum(1)
        return {"loss": nll.sum() / alive(t).sum(), "nll": nll.mean().detach()}

    # --------------------------------------------------------------- sampling
    def step(
        self, tok: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One LSTM step: the previous tokens (n,), state (h, c) and the condition input (n, embed) of a
        property-conditional model -> next-token logits (n, V) and the new state."""
        e = self.embedding(tok)
        h, state = self.lstm((e if cond is None else e + cond)[:, None], state)
        return self.head(h[:, 0]), state

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
        properties: object = None,
        **kwargs,
    ) -> torch.Tensor:
        """n token sequences (n, L), drawn one token per step with the LSTM state carried along; positions after
        a sequence's <eos> hold <eos>, and the loop stops once every sequence has ended. A property-conditional
        model takes `properties`: "qed=0.9,logp=2.5", {"qed": 0.9}, or values (K,) / (n, K) in condition_on order;
        properties not requested are drawn from the training data."""
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        f = self.sample_conditions(properties, n, generator)
        if f is None:
            return sample_sequences(
                self.step, self.start(labels, n), self.length, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p
            )
        cond = self.cond_input(f)
        return sample_sequences(
            lambda tok, state: self.step(tok, state, cond),
            self.start(None, n),
            self.length,
            self.initial_state(f),
            generator=generator,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
        )
