"""The contract test (zuko's style): every registered model, built from each of its
`contract_cases()`, passes the same checks — finite loss for every phase, gradients reach every
parameter, samples of the right shape and range, deterministic under a seed, exact save/load."""

import dataclasses

import pytest
import torch

from genlab import checkpoint as ckpt
from genlab import registry
from genlab.config import build
from genlab.models import build_model


def _n_cases(name):
    try:
        return len(registry.model(name)[1].contract_cases())
    except NotImplementedError:
        return 0  # test_every_model_has_cases fails for it


CASES = [pytest.param(name, i, id=f"{name}-{i}") for name in registry.list_models() for i in range(_n_cases(name))]


def make(name, i):
    cfg_cls, cls = registry.model(name)
    overrides, spec = cls.contract_cases()[i]
    torch.manual_seed(0)
    return build_model(build(cfg_cls, {"name": name, **overrides}, "model"), spec), spec


def fake_batch(spec, n=6):
    g = torch.Generator().manual_seed(1)
    if spec.encoding == "binary":
        x = torch.randint(0, 2, (n, *spec.shape), generator=g).float() * 2 - 1
    elif spec.encoding == "8bit":
        x = torch.randint(0, 256, (n, *spec.shape), generator=g).float()
        x = (x + torch.rand(x.shape, generator=g)) / 128 - 1 if spec.dequantized else x / 127.5 - 1
    elif spec.encoding == "tokens":  # ids 1.. then <eos> (id 0) padding from a random length on
        x = torch.randint(1, len(spec.vocab), (n, *spec.shape), generator=g)
        x[torch.arange(spec.shape[0]) >= torch.randint(1, spec.shape[0], (n, 1), generator=g)] = 0
    else:
        x = torch.randn((n, *spec.shape), generator=g)
    batch = {"x": x}
    if spec.num_classes:
        batch["y"] = torch.arange(n) % spec.num_classes
    return batch


def test_every_model_has_cases():
    for name in registry.list_models():
        assert registry.model(name)[1].contract_cases(), name


@pytest.mark.parametrize("name, i", CASES)
def test_loss_finite_and_gradients_reach_every_parameter(name, i):
    model, spec = make(name, i)
    model.train()
    batch = fake_batch(spec)
    reached = set()
    for ph in model.phases():
        model.zero_grad(set_to_none=True)
        out = model.loss(batch, phase=ph.name)
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"]), (ph.name, out)
        assert all(torch.isfinite(v).all() for v in out.values())
        out["loss"].backward()
        phase_params = {id(p) for p in ph.params}
        for pname, p in model.named_parameters():
            if id(p) in phase_params and p.grad is not None and p.grad.abs().sum() > 0:
                reached.add(pname)
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in reached]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name, i", CASES)
def test_sample_shape_range_and_determinism(name, i):
    model, spec = make(name, i)
    model.eval()
    labels = torch.arange(5) % spec.num_classes if model.conditional else None
    kw = model.contract_sample_kwargs(5)
    with torch.no_grad():
        a = model.sample(5, labels=labels, generator=torch.Generator().manual_seed(7), **kw)
        b = model.sample(5, labels=labels, generator=torch.Generator().manual_seed(7), **kw)
        c = model.sample(5, labels=labels, generator=torch.Generator().manual_seed(8), **kw)
    assert a.shape == (5, *spec.shape) and torch.isfinite(a).all()
    if spec.is_image:
        assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and (model.deterministic_sampling or not torch.equal(a, c))


@pytest.mark.parametrize("name, i", CASES)
def test_likelihood_shape(name, i):
    model, spec = make(name, i)
    model.eval()
    batch = fake_batch(spec)
    y = batch.get("y") if model.conditional else None
    if model.likelihood == "none":
        with pytest.raises(NotImplementedError):
            model.nll(batch["x"], y)
        return
    with torch.no_grad():
        nll = model.nll(batch["x"], y, k=2)
    assert nll.shape == (6,) and torch.isfinite(nll).all()


@pytest.mark.parametrize("name, i", CASES)
def test_save_load_round_trip(name, i, tmp_path):
    model, spec = make(name, i)
    ckpt.save_weights(tmp_path / "w.safetensors", model, {"model": name, "step": 0})
    torch.manual_seed(123)
    other, _ = make(name, i)
    for p in other.parameters():
        p.data.add_(1.0)
    ckpt.load_weights(tmp_path / "w.safetensors", other)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    model.eval(), other.eval()
    labels = torch.arange(3) % spec.num_classes if model.conditional else None
    kw = model.contract_sample_kwargs(3)
    with torch.no_grad():
        g = lambda: torch.Generator().manual_seed(0)
        assert torch.equal(model.sample(3, labels=labels, generator=g(), **kw), other.sample(3, labels=labels, generator=g(), **kw))


@pytest.mark.parametrize("name", registry.list_models())
def test_config_is_a_dataclass_with_help(name):
    cfg_cls, cls = registry.model(name)
    assert dataclasses.is_dataclass(cfg_cls) and cls.family and cls.likelihood in ("exact", "bound", "none")
