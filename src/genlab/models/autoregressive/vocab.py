"""Token models remember their vocabulary: its fingerprint is saved with the weights, and weights trained on another
vocabulary are refused when loaded."""

from __future__ import annotations

import zlib

import torch
from torch import nn

from genlab.errors import CheckpointError


def vocab_fingerprint(vocab: tuple[str, ...]) -> torch.Tensor:
    """(number of tokens, CRC-32 of the tokens joined by NUL) as a LongTensor."""
    return torch.tensor([len(vocab), zlib.crc32("\x00".join(vocab).encode())], dtype=torch.long)


class VocabularyBound(nn.Module):
    """Mixin for token models: `bind_vocabulary(vocab)` in __init__ stores the fingerprint as a buffer; loading a state
    dict whose fingerprint differs raises a CheckpointError naming both vocabularies."""

    def bind_vocabulary(self, vocab: tuple[str, ...]) -> None:
        self.register_buffer("vocab_fingerprint", vocab_fingerprint(vocab))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        theirs = state_dict.get(prefix + "vocab_fingerprint")
        if theirs is not None and not torch.equal(theirs.cpu(), self.vocab_fingerprint.cpu()):
            ours = self.vocab_fingerprint
            raise CheckpointError(
                f"these weights were trained on another vocabulary ({int(theirs[0])} tokens, checksum {int(theirs[1]):08x}) "
                f"than this model's tokenizer ({int(ours[0])} tokens, checksum {int(ours[1]):08x}): "
                "load the checkpoint with its own data file (genlab.load(run) uses the vocabulary stored in the run)"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
