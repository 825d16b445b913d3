"""Shared helpers of the bad-input suite: run the CLI in-process and check the user sees one clear error line."""

import pytest

from genlab.cli import main

TINY = (
    '[data]\nname = "test_images"\n[model]\nname = "test_gaussian"\n'
    "[train]\nmax_steps = 2\nbatch_size = 8\nwarmup_steps = 0\nprogress = false\nn_samples = 4\n[eval]\nn_samples = 8\n"
)


@pytest.fixture
def cfg_file(tmp_path):
    """A valid tiny config (2 steps of the test Gaussian on the test images)."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture
def cli(capsys):
    """run(*argv) -> (exit status, stderr) of `genlab ARGV`; fails the test if a traceback reaches the user."""

    def run(*argv):
        capsys.readouterr()
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:  # argparse's own usage errors
            rc = e.code
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        return rc, err

    return run
