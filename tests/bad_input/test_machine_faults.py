"""The machine's faults (issue 19, item 5): a full disk, a read-only or deleted run directory. Each gives one clear line
through the CLI, leaves the last checkpoint current and loadable, and leaves no half-written or temp file behind.

A full disk is made two ways: a fault-injecting fsync (atomic_write's last word before its rename: where a full disk
shows on file systems with delayed allocation) that cuts the temp file short and raises ENOSPC, and, where this
process may mount file systems (root in a container), a real tmpfs of a few MB that is filled up."""

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from _checks import assert_error as _assert_error

import genlab
from conftest import TINY
from genlab import checkpoint as ckpt
from genlab.train import trainer as trainer_module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run of 2 steps with an EMA, checkpointed at step 2."""
    root = tmp_path_factory.mktemp("trained")
    (root / "tiny.toml").write_text(TINY.replace("[train]\n", "[train]\nema_decay = 0.9\nckpt_every = 2\n"))
    genlab.train(root / "tiny.toml", run_dir=root / "run")
    return root


@pytest.fixture
def run(trained, tmp_path):
    shutil.copy(trained / "tiny.toml", tmp_path / "tiny.toml")
    return Path(shutil.copytree(trained / "run", tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))


@pytest.fixture
def disk_full(monkeypatch):
    """disk_full(name): the next atomic write of a file called `name` finds the disk full part-way through: its temp
    file is cut to half its length and fsync raises ENOSPC, as a kernel with delayed allocation reports it."""
    real_fsync = os.fsync

    def arm(name):
        def fsync(fd):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if Path(target).name.startswith(f".{name}."):
                os.truncate(target, os.path.getsize(target) // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return arm


def assert_error(rc, err, *parts, status=2):
    """assert_error on the last line: a resumed run first says where it resumes from."""
    _assert_error(rc, err.strip().splitlines()[-1] if err.strip() else err, *parts, status=status)


def temp_files(folder):
    return sorted(p.name for p in Path(folder).rglob(".*.tmp"))


def resume_step(run):
    return int(ckpt.load_state(run / "state.pt")["step"])


# ------------------------------------------------------------------------------------------------ a full disk
@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors", "state.pt", "loss.png"])
def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(cli, run, disk_full, name):
    before = {n: (run / n).read_bytes() for n in ("state.pt", "model.safetensors", "ema.safetensors")}
    disk_full(name)
    assert_error(
        *cli("train", run.parent / "tiny.toml", "train.max_steps=4", "--run", run),
        f"no space left on device while writing {run / name}",
        "the previous checkpoint (step 2) is intact" if name != "loss.png" else "the previous checkpoint (step 4) is intact",
        "free some space and run the same command to resume",
    )
    assert temp_files(run) == []
    if name != "loss.png":  # the checkpoint of step 4 was not completed: state.pt is step 2's, byte for byte
        assert (run / "state.pt").read_bytes() == before["state.pt"] and resume_step(run) == 2
        if name == "state.pt":  # the weights files had been replaced by complete ones of step 4
            assert ckpt.read_metadata(run / "model.safetensors")["step"] == "4"
        else:
            assert (run / name).read_bytes() == before[name]
    genlab.load(run)  # whatever is current loads


@pytest.mark.parametrize("name", ["model.safetensors", "state.pt"])
def test_a_resume_after_the_disk_was_freed_finishes_the_run(cli, run, monkeypatch, disk_full, name):
    disk_full(name)
    assert cli("train", run.parent / "tiny.toml", "train.max_steps=4", "--run", run)[0] == 2
    monkeypatch.undo()
    rc, err = cli("train", run.parent / "tiny.toml", "train.max_steps=4", "--run", run)
    assert rc == 0, err
    assert "resuming" in err and "from step 2" in err
    assert resume_step(run) == 4 and ckpt.read_metadata(run / "model.safetensors")["step"] == "4"


def test_disk_full_while_appending_metrics(cli, run, monkeypatch):
    """metrics.jsonl is appended in place: the failed append is one clear line, and the resume drops any half line."""
    real_open = open

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if Path(path).name == "metrics.jsonl" and "a" in mode:
            f.write('{"step": 3, "lo')  # part of the line reached the disk
            f.flush()
            f.write = lambda *_: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        return f

    monkeypatch.setattr(trainer_module, "open", full_open, raising=False)
    assert_error(
        *cli("train", run.parent / "tiny.toml", "train.max_steps=4", "--run", run),
        f"no space left on device while writing {run / 'metrics.jsonl'}",
        "the previous checkpoint (step 2) is intact",
    )
    monkeypatch.undo()
    assert cli("train", run.parent / "tiny.toml", "train.max_steps=4", "--run", run)[0] == 0
    steps = [genlab_row["step"] for genlab_row in _rows(run / "metrics.jsonl") if "loss" in genlab_row]
    assert steps == sorted(set(steps)) and steps[-1] == 4  # no duplicate and no half line survives the resume


def _rows(path):
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def test_disk_full_while_writing_eval_json_keeps_the_old_one(cli, run, disk_full):
    (run / "eval.json").write_text('{"old": true}\n')
    disk_full("eval.json")
    assert_error(
        *cli("eval", run, "eval.sample_metrics=false"), f"no space left on device while writing {run / 'eval.json'}", "free some space"
    )
    assert (run / "eval.json").read_text() == '{"old": true}\n'
    assert temp_files(run) == []


def test_disk_full_message_for_foreign_writers(tmp_path, monkeypatch):
    """safetensors and torch.save report a full disk in their own words; atomic_write still names the cause and file."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10 << 20, 10 << 20, 4096))

    def torch_like(tmp):
        Path(tmp).write_bytes(b"x" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    with pytest.raises(ckpt.StorageError, match=f"no space left on device while writing {tmp_path / 'w.pt'}"):
        ckpt.atomic_write(tmp_path / "w.pt", torch_like)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="inline_container"):  # with room on the disk it is not called a full disk
        ckpt.atomic_write(tmp_path / "w.pt", torch_like)


# --------------------------------------------------------------------------------- a real small file system
@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of 4 MB mounted at tmp_path/fs; skipped where this process may not mount file systems."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=10)


def fill(folder, leave=0):
    """Fill the file system of `folder` up to `leave` bytes with a ballast file (returned, to free the space again)."""
    ballast = Path(folder) / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(ballast, os.path.getsize(ballast) - leave)
    return ballast


def test_a_really_full_tmpfs(cli, trained, small_fs):
    run = Path(shutil.copytree(trained / "run", small_fs / "run", ignore=shutil.ignore_patterns(".lock")))
    state = (run / "state.pt").read_bytes()
    ballast = fill(small_fs)
    rc, err = cli("train", trained / "tiny.toml", "train.max_steps=4", "--run", run)
    assert rc == 2 and err.splitlines()[-1].startswith("genlab: error: no space left on device while writing " + str(run)), err
    assert (run / "state.pt").read_bytes() == state and resume_step(run) == 2
    assert temp_files(run) == []
    genlab.load(run)
    ballast.unlink()
    rc, err = cli("train", trained / "tiny.toml", "train.max_steps=4", "--run", run)
    assert rc == 0 and resume_step(run) == 4, err


def test_a_really_full_tmpfs_for_samples(cli, trained, small_fs, tmp_path):
    fill(small_fs)
    rc, err = cli("sample", trained / "run", "--out", small_fs / "s.npz")
    assert rc == 2 and f"no space left on device while writing {small_fs / 's.npz'}" in err, err
    assert not (small_fs / "s.npz").exists() and not list(small_fs.glob(".s.npz.*"))  # nothing half-written, no temp file


# ------------------------------------------------------------------------------------- a read-only run directory
@pytest.fixture
def readonly_run(run):
    """The run made read-only for real: chmod 0555 for a user, a read-only bind mount for root (chmod does not stop root)."""
    if os.geteuid() != 0:
        for p in [run, *run.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        yield run
        for p in [run, *run.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        return
    try:
        for args in (["--bind", str(run), str(run)], ["-o", "remount,bind,ro", str(run)]):
            done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                subprocess.run(["umount", str(run)], capture_output=True, timeout=10)
                pytest.skip(f"root here, and a read-only bind mount is not allowed: {done.stderr.strip()}")
    except OSError as e:
        pytest.skip(f"root here, and mount cannot run: {e}")
    yield run
    subprocess.run(["umount", "-l", str(run)], check=False, timeout=10)


def test_train_into_a_read_only_run_is_refused_at_once(cli, readonly_run):
    listing = sorted(p.name for p in readonly_run.iterdir())
    t0 = time.perf_counter()
    assert_error(
        *cli("train", readonly_run.parent / "tiny.toml", "train.max_steps=1000000", "--run", readonly_run),
        f"cannot train into {readonly_run}",
        "is not writable",
        "choose another --run directory",
    )
    assert time.perf_counter() - t0 < 5  # refused before a single step of the million
    assert sorted(p.name for p in readonly_run.iterdir()) == listing


def test_train_into_an_unwritable_run_is_refused_at_once_by_injection(cli, run, monkeypatch):
    """The same refusal where a real read-only folder cannot be made (root without mount): the probe's file creation fails."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert_error(*cli("train", run.parent / "tiny.toml", "train.max_steps=4", "--run", run), "is not writable", "Permission denied")
    assert resume_step(run) == 2


def test_sample_from_a_read_only_run_into_another_folder(cli, readonly_run, tmp_path):
    rc, err = cli("sample", readonly_run, "--n", "4", "--out", tmp_path / "out" / "s.npz")
    assert rc == 0, err
    assert (tmp_path / "out" / "s.npz").stat().st_size > 0


def test_eval_of_a_read_only_run_warns_first_and_still_gives_the_numbers(cli, readonly_run):
    with pytest.warns(UserWarning, match=f"{readonly_run} is not writable: eval.json will not be written there"):
        rc, err = cli("eval", readonly_run, "eval.sample_metrics=false")
    assert rc == 0, err
    assert not (readonly_run / "eval.json").exists()


def test_evaluate_an_unwritable_run_returns_the_numbers_by_injection(run, monkeypatch):
    """The same where a real read-only folder cannot be made: the write probe fails, the numbers come back, nothing is written."""
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.warns(UserWarning, match="eval.json will not be written"):
        res = genlab.evaluate(run, ["sample_metrics=false"])
    assert res["eval_json"] is None and res["run"] == str(run) and res["bits_per_dim"] > 0
    assert not (run / "eval.json").exists()


# ------------------------------------------------------------------------------- the run directory deleted
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_run_directory_deleted_while_training(cli, cfg_file, tmp_path, monkeypatch, how):
    """The trainer stops at its next write with one line, and does not bring the deleted directory back."""
    run = tmp_path / "run"
    step = trainer_module.Trainer.train_step

    def step_then_delete(self, logs):
        ok = step(self, logs)
        if self.step == 3:
            shutil.rmtree(self.run_dir)
            if how == "replaced":
                self.run_dir.mkdir()
        return ok

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_then_delete)
    rc, err = cli("train", cfg_file, "train.max_steps=6", "train.ckpt_every=2", "train.log_every=1", "--run", run)
    assert rc == 1 and err.splitlines()[-1].startswith(
        f"genlab: error: the run directory {run} was deleted (or replaced) while training, at step 3"
    ), err
    assert "Run the same command to start the run over" in err
    assert (not run.exists()) if how == "deleted" else list(run.iterdir()) == []


@pytest.mark.parametrize("out", ["s.png", "s.npz"])
def test_sample_out_on_a_full_disk_names_the_file_and_keeps_the_old_one(cli, trained, disk_full, tmp_path, out):
    (tmp_path / out).write_bytes(b"the user's earlier samples")
    disk_full(out)
    assert_error(
        *cli("sample", trained / "run", "--n", "4", "--out", tmp_path / out), f"no space left on device while writing {tmp_path / out}"
    )
    assert (tmp_path / out).read_bytes() == b"the user's earlier samples" and temp_files(tmp_path) == []
