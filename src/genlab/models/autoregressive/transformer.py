"""A causal decoder-only Transformer (pre-norm, as GPT-2) as a generative model of token sequences: characters or
SMILES from a text file, or the pixels of small images as tokens (256 levels, or 2 for binarised images), with
temperature, top-k and top-p sampling through a key/value cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import (
    DECODING_OPTIONS,
    at_least_float32,
    check_decoding,
    filter_logits,
    sample_categorical,
    start_tokens,
)
from genlab.models.autoregressive.vocab import VocabularyBound
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.property_conditions import (
    PROPERTIES_OPTION,
    PropertyConditioned,
    check_condition_config,
    condition_bins_param,
    condition_on_param,
)
from genlab.nn.transformer import CausalTransformer, KVCache
from genlab.registry import register_model
from genlab.spec import DataSpec

if TYPE_CHECKING:
    from genlab.data.text import Tokenizer


@dataclass
class TransformerConfig(ModelConfig):
    """A GPT-style decoder over the data's tokens; the start token carries the class of a conditional model."""

    name: str = param("transformer", help="model name")
    d_model: int = param(128, ge=1, help="width of the residual stream")
    n_layers: int = param(4, ge=1, help="Transformer blocks")
    n_heads: int = param(4, ge=1, help="attention heads (d_model must be a multiple)")
    positions: Literal["learned", "rope"] = param("learned", help="learned absolute position embeddings, or rotary (RoPE)")
    context: int = param(0, ge=0, help="longest sequence the model takes (0: the data's sequence length)")
    dropout: float = param(0.0, ge=0, lt=1, help="dropout in attention and MLP while training")
    conditional: bool = param(False, help="class-conditional: the start token is the class")
    condition_on: tuple[str, ...] = condition_on_param()
    condition_bins: int = condition_bins_param()

    def validate(self) -> None:
        check_condition_config(self)


def generate(
    net: CausalTransformer,
    n: int,
    length: int,
    s: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    cache: bool = True,
    eos: int | None = None,
    prefix: torch.Tensor | None = None,
) -> torch.Tensor:
    """n sequences (n, length) of token ids, one token per step; with `cache` each step feeds one token through
    the KV cache, without it each step re-reads the whole prefix (the reference the cache must agree with).
    With `eos`, generation stops once every row has drawn it, positions after a row's first `eos` hold `eos`,
    and the last position is `eos` (sequences hold at most length - 1 tokens before it). A `prefix` (n, P) of given
    tokens is kept as the first P tokens and the rest drawn from p(x_t | prefix, x_P..x_<t)."""
    check_decoding(temperature, top_k, top_p)
    x = torch.zeros(n, length, dtype=torch.long, device=s.device)
    P = 0 if prefix is None else prefix.shape[1]
    if prefix is not None:
        if prefix.shape[0] != n or P > length:
            raise ValueError(f"prefix: expected (n={n}, <= {length}) tokens, got {tuple(prefix.shape)}")
        x[:, :P] = prefix
    kv = KVCache(len(net.blocks)) if cache else None
    done = torch.zeros(n, dtype=torch.bool, device=s.device)
    if cache and P:  # the start token and the whole prefix in one pass: the last row predicts x_P
        first = net.prefill(x[:, :P], s, kv)
    for t in range(P, length):
        if cache:
            logits = first if P and t == P else net.step(x[:, t - 1] if t else None, s, kv)
        else:
            logits = net.logits(x[:, : t + 1], s)[:, -1]  # x[:, t] is a placeholder the prediction at t never sees
        if eos is not None and t == length - 1:  # the last position holds <eos> in every sequence
            tok = torch.full_like(x[:, t], eos)
        else:
            tok = sample_categorical(filter_logits(at_least_float32(logits), temperature, top_k, top_p), generator)
        if eos is not None:
            tok = torch.where(done, torch.full_like(tok, eos), tok)
            done |= tok == eos
        x[:, t] = tok
        if eos is not None and bool(done.all()):
            x[:, t + 1 :] = eos
            break
    return x


@register_model("transformer", TransformerConfig)
class Transformer(PropertyConditioned, VocabularyBound, GenerativeModel):
    """log p(x | y) = sum_t log p(x_t | x_<t, y), exact, in nats, over the data's token sequence:
    token sequences as they are (up to and including the first <eos>), 8-bit images as 256-level sub-pixels in
    raster order (rows, columns, channels), binarised images as 2-level pixels.

    With `condition_on` (molecule tokens of a *_props dataset) it learns p(x | c) for molecular properties c (see
    genlab.models.property_conditions) through a condition token: position 0 holds e_s + W_c c instead of the start
    embedding e_s, and every later position attends to it. This is MolGPT's condition token (Bagal et al. 2021) folded
    into the start slot: the context, the positions and the KV cache stay those of the unconditional model (the
    condition lives in the cached keys and values of position 0) and the cost is one linear layer. Adding W_c c to every
    input as well would need the decoder to take a second input in every pass (prefill, step, teacher forcing), for a
    signal attention already reaches in one hop.

    Example:
        >>> spec = DataSpec(shape=(1, 8, 8), encoding="binary")
        >>> model = Transformer(TransformerConfig(d_model=64, n_layers=2), spec)
        >>> model.log_prob(x)                                                  # (B,) nats
        >>> model.sample(16, generator=g, temperature=0.9, top_k=None, top_p=0.95)
    """

    family = "autoregressive"
    likelihood = "exact"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (
            *DECODING_OPTIONS,
            SampleOption("cache", bool, "reuse attention keys and values across steps (KV cache)"),
            PROPERTIES_OPTION,
        )

    def __init__(self, config: TransformerConfig, spec: DataSpec):
        super().__init__(config, spec)
        if spec.encoding == "tokens":
            if len(spec.shape) != 1 or len(spec.vocab) < 2:
                raise ConfigError(f"token data must be sequences (L,) over a vocabulary of >= 2 tokens; got shape {spec.shape}")
            vocab_size = len(spec.vocab)
        elif spec.encoding == "binary" and spec.is_image:
            vocab_size = 2
        elif spec.encoding == "8bit" and spec.is_image and not spec.dequantized:
            vocab_size = 256
        elif spec.encoding == "8bit" and spec.is_image:
            raise ConfigError(
                "a Transformer over pixels models the 256 levels themselves, but the data are dequantised; set data.dequantize=false"
            )
        else:
            raise ConfigError(
                f"a Transformer models token sequences or images as tokens; these data are {spec.encoding} of shape {spec.shape}"
            )
        length = spec.dim
        context = config.context or length
        if length > context:
            raise ConfigError(
                f"model.context={context} is shorter than the data's sequences of {length} tokens; "
                f"set model.context={length} (or 0 for the data's length)"
            )
        if config.d_model % config.n_heads:
            raise ConfigError(f"model.d_model={config.d_model} must be a multiple of model.n_heads={config.n_heads}")
        if config.positions == "rope" and (config.d_model // config.n_heads) % 2:
            raise ConfigError(f"positions='rope' needs an even head size; d_model / n_heads = {config.d_model // config.n_heads}")
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        self.vocab_size, self.length = vocab_size, length
        self.net = CausalTransformer(
            vocab_size,
            context,
            config.d_model,
            config.n_layers,
            config.n_heads,
            config.positions,
            n_starts=spec.num_classes if self.conditional else 1,
            dropout=config.dropout,
        )
        # Which vocabulary the weights belong to, saved with them: loading weights trained on another is an error.
        self.bind_vocabulary(spec.vocab)
        width = self.init_property_conditions(config)
        if width:
            if spec.encoding != "tokens":
                raise ConfigError(
                    f"model.condition_on conditions molecule token sequences on their properties; these data are {spec.encoding}"
                )
            self.cond_start = torch.nn.Linear(width, config.d_model)  # W_c: the condition token is e_s + W_c c

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        vocab = ("<eos>", "C", "O", "N", "(", ")", "=")
        return [
            ({"d_model": 16, "n_layers": 2, "n_heads": 2}, DataSpec((12,), encoding="tokens", vocab=vocab)),
            ({"d_model": 16, "n_layers": 1, "n_heads": 2, "positions": "rope", "conditional": True}, DataSpec((1, 4, 4), num_classes=3)),
            ({"d_model": 16, "n_layers": 1, "n_heads": 2}, DataSpec((1, 5, 5), encoding="binary")),
        ]

    def start_input(self, f: torch.Tensor | None, y: torch.Tensor | None, n: int) -> torch.Tensor:
        """What position 0 holds: the start ids (n,) (the class of a class-conditional model), or for condition
        vectors f (n, width) the condition tokens e_s + W_c f (n, d_model)."""
        if f is None:
            return start_tokens(self, y, n)
        return self.net.start.weight[0] + self.cond_start(f)

    # ------------------------------------------------------------ data <-> tokens
    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Data (B, *shape) -> token ids (B, L), sub-pixels in raster order (rows, columns, channels)."""
        if tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(
                f"expected data of shape (B, {', '.join(map(str, self.spec.shape))}), got {tuple(x.shape)}"
                + (f": a sequence longer than the model's {self.length} positions" if x.dim() == 2 and x.shape[1] > self.length else "")
            )
        if self.spec.encoding == "tokens":
            return x.long()
        x = x.permute(0, 2, 3, 1).flatten(1)
        return (x > 0).long() if self.spec.encoding == "binary" else torch.round((x + 1) * 127.5).long().clamp(0, 255)

    def from_tokens(self, t: torch.Tensor) -> torch.Tensor:
        if self.spec.encoding == "tokens":
            return t
        C, H, W = self.spec.shape
        x = t.float() * 2 - 1 if self.spec.encoding == "binary" else t.float() / 127.5 - 1
        return x.view(-1, H, W, C).permute(0, 3, 1, 2).contiguous()

    # ------------------------------------------------------------- likelihood
    def conditionals(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_t | x_<t, y) for every position (B, L); positions after a sequence's first <eos> are 0.
        They sum to `log_prob`. For a property-conditional model y holds the properties (B, 4) of the *_props datasets."""
        t = self.to_tokens(x)
        logits = at_least_float32(self.net.logits(t, self.start_input(self.conditions(y, len(t)), y, len(t))))
        if self.spec.encoding == "tokens":  # the last position can only be <eos>: a distribution over strings of < L tokens
            logits = torch.cat(
                [
                    logits[:, :-1],
                    torch.where(torch.arange(logits.shape[-1], device=t.device) == 0, 0.0, -torch.inf).expand_as(logits[:, -1:]),
                ],
                dim=1,
            )
        logp = torch.log_softmax(logits, dim=-1)
        lp = logp.gather(-1, t[..., None])[..., 0]
        if self.spec.encoding == "tokens":
            ended = (t == 0).long().cumsum(1) - (t == 0).long()  # <eos> tokens strictly before t
            lp = torch.where(ended == 0, lp, torch.zeros_like(lp))
        return lp

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log P(x | y) per example, (B,), in nats."""
        return self.conditionals(x, y).sum(1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Negative log-likelihood per position (batch mean; <eos> padding excluded for token data); `nll` per example."""
        self.batch_conditions(batch)  # checks the batch's properties and keeps them in the bank while training
        lp = self.conditionals(batch["x"], batch.get("y"))
        if self.spec.encoding == "tokens":
            t = batch["x"].long()
            n_tokens = ((t == 0).long().cumsum(1) - (t == 0).long() == 0).sum()
        else:
            n_tokens = lp.numel()
        nll = -lp.sum(1)
        return {"loss": nll.sum() / n_tokens, "nll": nll.mean().detach()}

    # --------------------------------------------------------------- sampling
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
        cache: bool = True,
        properties: object = None,
        **kwargs,
    ) -> torch.Tensor:
        """n examples drawn token by token: images in [-1, 1], or token ids (n, L) with <eos> padding.

        `temperature` divides the logits, `top_k` keeps the k likeliest tokens, `top_p` the smallest set of
        probability >= p; `cache=False` recomputes the whole prefix each step (slower; the same tokens). A
        property-conditional model takes `properties`: "qed=0.9,logp=2.5", {"qed": 0.9}, or values (K,) / (n, K) in
        condition_on order; properties not requested are drawn from the training data."""
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        eos = 0 if self.spec.encoding == "tokens" else None
        s = self.start_input(self.sample_conditions(properties, n, generator), labels, n)
        t = generate(
            self.net, n, self.length, s, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p, cache=cache, eos=eos
        )
        return self.from_tokens(t)

    def tokenizer(self) -> Tokenizer:
        """The `genlab.data.text.Tokenizer` of this model's vocabulary (token data only)."""
        from genlab.data.text import Tokenizer

        return Tokenizer.from_spec(self.spec)

    @torch.no_grad()
    def log_prob_text(self, texts: list[str]) -> torch.Tensor:
        """log P(text) in nats for strings, encoded with the model's own vocabulary (a clear error for a
        character it has never seen or a text longer than its context)."""
        if self.spec.encoding != "tokens":
            raise ValueError("log_prob_text needs a model of token data")
        too_long = [i for i, t in enumerate(texts) if len(t) >= self.length]
        if too_long:
            i = too_long[0]
            raise ValueError(
                f"text {i} has {len(texts[i])} characters: with <eos> it is longer than the model's context of {self.length} tokens"
            )
        return self.log_prob(self.tokenizer().encode(texts, self.length).to(self.device))

    def decode_text(self, ids: torch.Tensor) -> list[str]:
        """Sampled ids (n, L) -> strings."""
        return self.tokenizer().decode(ids)
