"""Two training processes never share a run directory: the second is refused naming the first's PID; a lock left by a
process that was killed is taken over; a folder that is not a run gets no lock file."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import genlab
from genlab.cli import main
from genlab.errors import CheckpointError
from genlab.train import rundir


def hold_lock(run_dir):
    """A process that takes run_dir's lock and waits (as a training process does); returns once it holds it."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from genlab.train import rundir
        rundir.acquire({str(run_dir)!r})
        print("held", flush=True)
        time.sleep(120)
        """
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text(
        '[data]\nname = "test_images"\n[model]\nname = "test_gaussian"\n'
        "[train]\nmax_steps = 6\nbatch_size = 32\nlog_every = 3\nwarmup_steps = 0\nprogress = false\n"
    )
    return path


def test_second_process_is_refused_naming_the_holder_then_takes_over_a_killed_ones_lock(tmp_path, cfg_file, capsys):
    run = tmp_path / "run"
    holder = hold_lock(run)
    try:
        assert main(["train", str(cfg_file), "--run", str(run)]) == 2
        err = capsys.readouterr().err
        assert f"genlab: error: run directory {run} is in use by another genlab process (PID {holder.pid} on " in err
        assert "Traceback" not in err and "choose another --run directory" in err
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]  # nothing of the refused run was written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without cleaning up: its lock file (naming it) is left, its flock went with it.
    assert f"PID {holder.pid} " in (run / rundir.LOCK).read_text()
    assert main(["train", str(cfg_file), "--run", str(run)]) == 0
    assert (run / rundir.LOCK).read_text().startswith(f"PID {os.getpid()} ")
    assert genlab.load(run) is not None


def test_a_released_lock_can_be_taken_by_another_process(tmp_path):
    run = tmp_path / "run"
    rundir.acquire(run)
    rundir.acquire(run)  # re-entrant within a process
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(
            [sys.executable, "-c", f"from genlab.train import rundir; rundir.acquire({str(run)!r})"],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    rundir.release(run)
    subprocess.run(
        [sys.executable, "-c", f"from genlab.train import rundir; rundir.acquire({str(run)!r})"],
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_no_lock_file_in_a_folder_that_is_not_a_run(tmp_path, gauss_cfg):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match="not a genlab run"):
        genlab.train(gauss_cfg, run_dir=mine)
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


def test_a_folder_holding_only_a_lock_counts_as_empty(tmp_path, gauss_cfg):
    """A run that failed before writing anything leaves only `.lock`: the next run starts there as in an empty folder."""
    run = tmp_path / "run"
    rundir.acquire(run)
    rundir.release(run)
    gauss_cfg["train"]["max_steps"] = 2
    assert genlab.train(gauss_cfg, run_dir=run, resume="never").step == 2


def test_run_path_that_is_a_file_is_refused(tmp_path, gauss_cfg):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="exists and is not a directory"):
        genlab.train(gauss_cfg, run_dir=tmp_path / "file")
