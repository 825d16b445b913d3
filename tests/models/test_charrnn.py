"""CharRNN: an exact distribution over token strings (it sums to one), teacher forcing and the state-carrying sampler
agree, samples follow the model's probabilities, decoding options, training and vocabulary checks."""

import itertools

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import checkpoint as ckpt
from genlab.errors import CheckpointError
from genlab.models.autoregressive.charrnn import CharRNN, CharRNNConfig
from genlab.spec import DataSpec

pytestmark = pytest.mark.usefixtures("one_thread")


VOCAB = ("<eos>", "C", "O")


def all_strings(length: int) -> torch.Tensor:
    """Every sequence of < length tokens over C, O, padded with <eos>: 1 + 2 + ... + 2^(length-1) rows."""
    rows = [list(t) + [0] * (length - n) for n in range(length) for t in itertools.product([1, 2], repeat=n)]
    return torch.tensor(rows)


def tiny(length=4, conditional=False, seed=0):
    torch.manual_seed(seed)
    spec = DataSpec((length,), encoding="tokens", vocab=VOCAB, num_classes=2 if conditional else 0, modality="molecules")
    return CharRNN(CharRNNConfig(hidden=8, n_layers=2, embed=4, dropout=0.0, conditional=conditional), spec).double().eval()


@pytest.mark.parametrize("conditional", [False, True])
def test_probabilities_of_all_strings_sum_to_one(conditional):
    model = tiny(conditional=conditional)
    x = all_strings(4)
    for c in range(2 if conditional else 1):
        y = torch.full((len(x),), c) if conditional else None
        assert model.log_prob(x, y).exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_teacher_forcing_equals_the_state_carrying_recursion():
    model = tiny(length=6)
    x = torch.tensor([[1, 2, 1, 0, 0, 0], [2, 2, 2, 2, 2, 0], [0, 0, 0, 0, 0, 0]])
    manual = []
    for row in x:
        tok, state, lp = model.start(None, 1), None, 0.0
        for i, t in enumerate(row.tolist()):
            h, state = model.lstm(model.embedding(tok)[:, None], state)
            if i < len(row) - 1:  # the last position can only be <eos>: log 1
                lp += torch.log_softmax(model.head(h[:, 0]), -1)[0, t].item()
            if t == 0:
                break
            tok = torch.tensor([t])
        manual.append(lp)
    assert model.log_prob(x).tolist() == pytest.approx(manual, abs=1e-10)


def test_samples_follow_the_model_distribution():
    model = tiny(length=3, seed=1)
    x = all_strings(3)  # 7 strings
    p = model.log_prob(x).exp()
    s = model.sample(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.stack([(s == row).all(1).sum() for row in x]).double()
    assert counts.sum() == 20000  # every sample is one of the 7 strings: <eos> padding after the first <eos>
    assert (counts / 20000 - p).abs().max() < 0.015


def test_decoding_options_and_cold_sampling_is_greedy():
    model = tiny(length=5)
    greedy = model.sample(4, generator=torch.Generator().manual_seed(0), temperature=1e-4)
    assert (greedy == greedy[0]).all()
    nucleus = model.sample(4, generator=torch.Generator().manual_seed(1), top_p=1e-6)
    top1 = model.sample(4, generator=torch.Generator().manual_seed(2), top_k=1)
    assert torch.equal(nucleus, greedy) and torch.equal(top1, greedy)
    with pytest.raises(ValueError, match="no option"):
        model.sample(2, beam=3)


def test_training_fits_a_two_molecule_distribution():
    torch.manual_seed(0)
    spec = DataSpec((5,), encoding="tokens", vocab=VOCAB, modality="molecules")
    model = CharRNN(CharRNNConfig(hidden=16, n_layers=1, embed=8, dropout=0.0), spec)
    data = torch.tensor([[1, 1, 2, 0, 0], [2, 1, 1, 0, 0]] * 8)  # CCO and OCC, equally often
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = model.loss({"x": data})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model.log_prob(data[:2]).exp().tolist() == pytest.approx([0.5, 0.5], abs=0.03)


def test_weights_of_another_vocabulary_and_wrong_shapes_are_refused(tmp_path):
    model = tiny()
    ckpt.save_weights(tmp_path / "w.safetensors", model, {"model": "charrnn"})
    other_spec = DataSpec((4,), encoding="tokens", vocab=("<eos>", "C", "N"), modality="molecules")
    other = CharRNN(CharRNNConfig(hidden=8, n_layers=2, embed=4), other_spec).double()
    with pytest.raises(CheckpointError, match="another vocabulary"):
        ckpt.load_weights(tmp_path / "w.safetensors", other)
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 7, dtype=torch.long))
