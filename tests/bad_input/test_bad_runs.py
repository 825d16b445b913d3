"""Bad run directories and checkpoints through the CLI: every refusal is one clear line with exit status 2, and a
refused command writes nothing into the run."""

import pickle
import shutil
from pathlib import Path

import pytest
from _checks import assert_error

import genlab
from conftest import TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    (root / "tiny.toml").write_text(TINY)
    genlab.train(root / "tiny.toml", run_dir=root / "run")
    return root / "run"


@pytest.fixture
def run(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))


class _Planted:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_run_that_is_a_file(cli, cfg_file, tmp_path):
    (tmp_path / "f").write_text("x")
    assert_error(*cli("train", cfg_file, "--run", tmp_path / "f"), "exists and is not a directory", "choose another --run directory")


def test_run_that_is_someone_elses_folder(cli, cfg_file, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert_error(*cli("train", cfg_file, "--run", tmp_path / "mine"), "not a genlab run", "thesis.tex", "choose another --run directory")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_resume_without_a_run(cli, cfg_file, tmp_path):
    assert_error(*cli("train", cfg_file, "--resume", "--run", tmp_path / "none"), "cannot resume", "does not exist or is empty")


def test_fresh_on_an_existing_run(cli, cfg_file, run):
    assert_error(*cli("train", cfg_file, "--fresh", "--run", run), "already exists", "drop --fresh")


def test_resume_with_another_config(cli, cfg_file, run):
    assert_error(*cli("train", cfg_file, "train.lr=0.5", "--run", run), "different config", "train.lr: 0.001 -> 0.5")


def test_resume_and_fresh_together_is_a_usage_error(cli, cfg_file, run):
    rc, err = cli("train", cfg_file, "--fresh", "--resume", "--run", run)
    assert rc == 2 and "not allowed with argument" in err


def test_planted_pickle_state_via_cli(cli, cfg_file, run, tmp_path):
    (run / "state.pt").write_bytes(pickle.dumps({"step": _Planted(tmp_path / "pwned")}))
    assert_error(*cli("train", cfg_file, "train.max_steps=4", "--run", run), "state.pt", "truncated or corrupt")
    assert not (tmp_path / "pwned").exists()


def test_zero_byte_state_via_cli(cli, cfg_file, run):
    (run / "state.pt").write_bytes(b"")
    assert_error(*cli("train", cfg_file, "train.max_steps=4", "--run", run), "state.pt cannot be read", "start a new run directory")


def test_state_without_step_via_cli(cli, cfg_file, run):
    import torch

    state = torch.load(run / "state.pt", weights_only=True)
    del state["step"]
    torch.save(state, run / "state.pt")
    assert_error(*cli("train", cfg_file, "train.max_steps=4", "--run", run), "state.pt", "no 'step' field")


@pytest.mark.parametrize("cut", [0, 10, 1000])
def test_truncated_weights_via_sample(cli, run, tmp_path, cut):
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[:cut])
    assert_error(*cli("sample", run, "--out", tmp_path / "s.png"), "model.safetensors", "truncated or corrupt")
    assert not (tmp_path / "s.png").exists()


def test_missing_weights_via_eval(cli, run):
    (run / "model.safetensors").unlink()
    assert_error(*cli("eval", run), "model.safetensors", "train")


def test_weights_of_another_model(cli, run, tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    save_file({"w": torch.zeros(2)}, str(run / "model.safetensors"), metadata=meta)
    assert_error(
        *cli("sample", run, "--out", tmp_path / "s.png"),
        "model.safetensors does not fit this model",
        "missing ['calls', 'log_sigma', 'mu']",
        "unexpected ['w']",
    )


@pytest.mark.parametrize("spec", ["{}", "not json"])
def test_weights_with_a_broken_header_waiting_for_the_lead(cli, run, tmp_path, spec):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(run / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
    save_file(load_file(str(run / "model.safetensors")), str(run / "model.safetensors"), metadata={**meta, "spec": spec})
    assert_error(*cli("sample", run, "--out", tmp_path / "s.png"), "model.safetensors")


@pytest.mark.parametrize(
    "args, parts",
    [
        (["--n", "0"], ["n: expected a positive number of samples, got 0"]),
        (["--n", "-3"], ["got -3"]),
        (["--labels", "99"], ["labels: expected values in 0..3"]),
        (["-o", "noequals"], ["--option 'noequals'", "KEY=VALUE"]),
    ],
)
def test_bad_sample_options(cli, run, tmp_path, args, parts):
    assert_error(*cli("sample", run, "--out", tmp_path / "s.png", *args), *parts)


def test_sample_out_of_unknown_type(cli, run, tmp_path):
    assert_error(*cli("sample", run, "--out", tmp_path / "s.xyz"), "--out", ".png or .npz")


def test_sample_from_nothing(cli, tmp_path):
    assert_error(*cli("sample", tmp_path / "nope", "--out", tmp_path / "s.png"), "does not exist")


def test_info_of_a_folder_that_is_not_a_run(cli, tmp_path):
    assert_error(*cli("info", tmp_path), "not a genlab run directory", "genlab train CONFIG --run")


@pytest.mark.parametrize(
    "override, parts",
    [("eval.bogus=1", ["unknown key eval.bogus"]), ("eval.n_examples=0", ["eval.n_examples", ">= 1"]), ("eval.iwae_k=-1", ["eval.iwae_k"])],
)
def test_bad_eval_overrides(cli, run, override, parts):
    assert_error(*cli("eval", run, override), *parts)
    assert not (run / "eval.json").exists()


# Known gaps in lead-owned code (cli.py's sample command, modalities' writers): strict, so a fix asks for the marker to go.
@pytest.mark.parametrize(
    "args", [["--labels", "a,b"], ["--device", "tpu"], ["--out", "/proc/no/such/dir/s.png"]], ids=["labels", "device", "out"]
)
def test_sample_gaps_waiting_for_the_lead(cli, run, tmp_path, args):
    argv = ["sample", run, *args] if "--out" in args else ["sample", run, "--out", tmp_path / "s.png", *args]
    assert_error(*cli(*argv))
