"""`genlab data build NAME`: the subcommand reaches the data set's builder with the folder, profile and workers asked,
prints the manifest's summary, and refuses unknown names."""

import json

import pytest

from genlab.apps import data_build
from genlab.cli import main
from genlab.data import audio


def test_cli_calls_the_builder(monkeypatch, tmp_path, capsys):
    calls = []

    def fake(dest, *, profile, workers, **kw):
        calls.append((str(dest), profile, workers))
        return {"name": "spoken_digits", "profile": profile, "sample_rate": 16000, "clip_seconds": 1.0, "sizes": {"train": 1}}

    monkeypatch.setitem(audio.BUILDERS, "spoken_digits", fake)
    assert main(["data", "build", "spoken_digits", "--profile", "tiny", "--dest", str(tmp_path), "--workers", "1"]) == 0
    assert calls == [(str(tmp_path), "tiny", 1)]
    printed = json.loads(capsys.readouterr().out)
    assert printed["sizes"] == {"train": 1} and printed["profile"] == "tiny"


def test_default_folder_is_the_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    seen = []
    monkeypatch.setitem(audio.BUILDERS, "spoken_digits_8k", lambda dest, **kw: seen.append(dest) or {})
    data_build.build("spoken_digits_8k", quiet=True)
    assert seen == [tmp_path / "spoken_digits"]  # the 8 kHz set is resampled from the 16 kHz build


def test_unknown_name_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["data", "build", "nope"])
    assert "invalid choice" in capsys.readouterr().err
