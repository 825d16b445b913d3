"""Benchmark: crash consistency. Kill `genlab train` with SIGKILL at random moments, resume, repeat; check every time.

For one preset of each family (tiny overrides, a step budget, one thread, a checkpoint every `--ckpt-every` steps) the
script trains an uninterrupted reference run, then runs the same command again and again into a second run directory,
killing it with SIGKILL `--kills` times: at a random moment after the segment has made progress, or (about half of the
kills) while a checkpoint file is being written, which the test hook GENLAB_TEST_PAUSE_IN_WRITE stretches so that the
kill lands inside it. After each kill it checks that state.pt and the weights files are complete and readable (never a
half-written current checkpoint) and how many steps were lost (the last step logged before the kill minus the step the
next segment resumes from: at most one checkpoint interval). The last segment runs to the end, and its weights, EMA
and logged metrics must equal the reference run's bit for bit (exact resume on the CPU).

The kills inside a write pick the file at random among model.safetensors, ema.safetensors and state.pt (the test hook
pauses every write; the kill waits for the temp file of the chosen one), so later files of a checkpoint are hit too.
Family "torchrun" runs the VAE as two CPU processes (gloo) under torchrun and SIGKILLs one rank at random: the whole
job must stop (torchrun's agent ends the other rank; `stop s` is the longest time from the kill to the job's end), and
the relaunches must end with the weights of an uninterrupted torchrun run.

    python bench/crash.py                              # every family and torchrun, 20 kills each
    python bench/crash.py --families gan --kills 5     # a quick look (rows of other families in crash.json are kept)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"

# family -> (preset, tiny overrides, step budget)
FAMILIES = {
    "vae": ("configs/vae/vae_moons_toy2d.toml", ["model.hidden=[32, 32]", "train.batch_size=64"], 1200),
    "diffusion": (
        "configs/diffusion/ddpm_moons_toy2d.toml",
        ["model.width=32", "model.depth=2", "model.steps=4", "train.batch_size=64", "eval.n_samples=64"],
        1200,
    ),
    "gan": (
        "configs/gan/gan_8gaussians_toy2d.toml",
        ["model.g_hidden=[32, 32]", "model.d_hidden=[32, 32]", "train.batch_size=64"],
        1200,
    ),
    "flow": ("configs/flow/realnvp_moons_toy2d.toml", ["model.layers=4", "model.hidden=[32, 32]", "train.batch_size=64"], 1200),
    "autoregressive": (
        "configs/autoregressive/pixelcnn_binarized_fmnist.toml",
        [
            "data.n_train=1024",
            "data.n_test=64",
            "model.channels=8",
            "model.n_layers=2",
            "train.batch_size=16",
            "train.n_samples=4",
            "eval.n_samples=16",
            "eval.batch_size=64",
        ],
        600,
    ),
}
IGNORED_METRICS = {"time", "images_per_s"}  # wall-clock figures differ between any two runs
CKPT_FILES = ("model.safetensors", "ema.safetensors", "state.pt")  # written in this order; state.pt is the commit
# The torchrun case: the VAE on two CPU processes (gloo), one of them killed.
TORCHRUN = ("configs/vae/vae_moons_toy2d.toml", ["model.hidden=[32, 32]", "train.batch_size=64"], 600)


def command(preset: str, overrides: list[str], steps: int, ckpt_every: int, run_dir: Path, *, torchrun: bool = False) -> list[str]:
    budget = [
        "train.max_time=none",
        f"train.max_steps={steps}",
        f"train.ckpt_every={ckpt_every}",
        "train.ckpt_every_time=1e6",
        "train.log_every=1",
        "train.num_threads=1",
        "train.progress=false",
    ]
    launcher = [sys.executable, "-m", "genlab"]
    if torchrun:  # --standalone: a local rendezvous on a free port; the agent stops every worker when one fails
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        launcher += ["--monitor-interval", "0.2", "-m", "genlab"]
    return [*launcher, "train", str(ROOT / preset), *overrides, *budget, "--run-dir", str(run_dir)]  # torchrun takes "--run"


def logged_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # SIGKILL cannot cut an append of one short line, but be tolerant anyway
            pass
    return rows


def last_step(run_dir: Path) -> int:
    return max((r["step"] for r in logged_rows(run_dir) if "loss" in r or any(k.endswith("loss") for k in r)), default=0)


def check_checkpoint(run_dir: Path) -> tuple[int | None, str | None]:
    """(step of the current checkpoint or None when there is none yet, the problem found or None)."""
    from safetensors.torch import load_file

    from genlab import checkpoint as ckpt
    from genlab.errors import CheckpointError

    if not (run_dir / "state.pt").exists():
        return None, None
    try:
        state = ckpt.load_state(run_dir / "state.pt")
        for name in ("model.safetensors", "ema.safetensors"):
            if (run_dir / name).exists():
                ckpt.read_metadata(run_dir / name)
                load_file(str(run_dir / name))
    except CheckpointError as e:
        return None, str(e)
    return int(state["step"]), None


def training_rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in IGNORED_METRICS} for r in logged_rows(run_dir) if "event" not in r]


def same_weights(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    for name in ("model.safetensors", "ema.safetensors"):
        if (a / name).exists() != (b / name).exists():
            return False
        if (a / name).exists():
            x, y = load_file(str(a / name)), load_file(str(b / name))
            if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
                return False
    return True


def temp_files(run_dir: Path, name: str = "") -> list[str]:
    """The temp files of writes in flight (checkpoint.atomic_write names them `.<file>.<random>.tmp`), of file `name` if given."""
    return [p.name for p in run_dir.glob(f".{name}*.tmp") if not name or p.name.startswith(f".{name}.")]


def workers(launcher: int) -> dict[int, int]:
    """rank -> PID of the processes torchrun (PID `launcher`) started, read from /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                env = dict(v.split("=", 1) for v in (d / "environ").read_text().split("\0") if "=" in v)
                out[int(env["RANK"])] = int(d.name)
        except (OSError, KeyError, ValueError, IndexError):  # gone, or not a worker
            pass
    return out


def wait_for(cond, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


STOP_LIMIT = 120.0  # seconds a torchrun job may take to stop after one of its ranks was killed


def crash_family(family: str, kills: int, ckpt_every: int, pause: float, seed: int, work: Path) -> dict:
    """`kills` SIGKILLs of one family's run (or, for family "torchrun", of one rank of a two-process run), then the checks."""
    torchrun = family == "torchrun"
    preset, overrides, steps = TORCHRUN if torchrun else FAMILIES[family]
    rng = random.Random(seed)
    ref, cut = work / f"{family}_ref", work / f"{family}_cut"
    for d in (ref, cut):
        shutil.rmtree(d, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = lambda run_dir: command(preset, overrides, steps, ckpt_every, run_dir, torchrun=torchrun)  # noqa: E731
    t0 = time.time()
    done = subprocess.run(cmd(ref), env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{family}: the reference run failed:\n{done.stderr[-3000:]}")
    ref_seconds = time.time() - t0
    written = [name for name in CKPT_FILES if (ref / name).exists()]

    events, problems = [], []
    resumed_from = reached = 0
    for k in range(kills):
        in_write = rng.random() < 0.5
        target = rng.choice(written) if in_write else None  # the checkpoint file the kill should land in
        victim = rng.randrange(2) if torchrun else None  # the rank killed
        seg_env = {**env, "GENLAB_TEST_PAUSE_IN_WRITE": str(pause)} if in_write else env
        log = open(work / f"{family}_segment{k:02d}.log", "w")
        proc = subprocess.Popen(cmd(cut), env=seg_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        # New progress: past the last step logged before the previous kill (rows after the checkpoint are stale).
        progressed = wait_for(lambda start=reached: last_step(cut) > start, 300, proc)
        if not progressed:
            proc.wait()
            log.close()
            if proc.returncode == 0:  # the budget ran out before this kill: the run is done
                break
            problems.append(f"kill {k}: the resumed run failed (exit {proc.returncode}), see {log.name}")
            break
        where = "random"
        if in_write:
            if wait_for(lambda name=target: bool(temp_files(cut, name)), 120, proc):
                where = f"in write of {target}"
        else:
            time.sleep(rng.uniform(0.0, 1.0))
        pid = workers(proc.pid).get(victim) if torchrun else proc.pid
        t_kill = time.time()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop_seconds = None
        try:
            proc.wait(timeout=STOP_LIMIT)
            stop_seconds = round(time.time() - t_kill, 2)
        except subprocess.TimeoutExpired:
            problems.append(f"kill {k}: the job did not stop within {STOP_LIMIT:.0f} s after rank {victim} was killed")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if torchrun:  # what torchrun left running: nothing, or its workers would hold the run's lock
            time.sleep(0.5)
            try:
                os.killpg(proc.pid, 0)
                problems.append(f"kill {k}: processes of the job outlived it")
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        reached = last_step(cut)
        step, problem = check_checkpoint(cut)
        if problem:
            problems.append(f"kill {k}: corrupt checkpoint: {problem}")
        now = step or 0
        lost = reached - now
        if now < resumed_from:
            problems.append(f"kill {k}: the checkpoint went back from step {resumed_from} to {now}")
        if lost > ckpt_every:
            problems.append(f"kill {k}: {lost} steps lost (> one checkpoint interval of {ckpt_every})")
        event = {"kill": k, "where": where, "step_reached": reached, "checkpoint_step": step, "steps_lost": lost}
        if torchrun:
            event.update(rank_killed=victim, stop_seconds=stop_seconds, exit_status=proc.returncode)
        events.append(event)
        resumed_from = now

    final = subprocess.run(cmd(cut), env=env, capture_output=True, text=True)
    if final.returncode != 0:
        problems.append(f"final resume failed (exit {final.returncode}): {final.stderr[-500:]}")
    equal_weights = final.returncode == 0 and same_weights(ref, cut)
    equal_metrics = final.returncode == 0 and training_rows(ref) == training_rows(cut)
    leftovers = sorted(temp_files(cut))
    if leftovers:
        problems.append(f"temp files left: {leftovers}")
    stops = [e["stop_seconds"] for e in events if e.get("stop_seconds") is not None]
    return {
        "family": family,
        "preset": preset,
        "overrides": overrides,
        "steps": steps,
        "ckpt_every": ckpt_every,
        "processes": 2 if torchrun else 1,
        "kills": len(events),
        "kills_in_write": sum(e["where"] != "random" for e in events),
        "kills_in_write_by_file": {name: sum(e["where"] == f"in write of {name}" for e in events) for name in written},
        "clean_resumes": len(events) - len({int(p.split(":")[0].split()[1]) for p in problems if p.startswith("kill")}),
        "max_steps_lost": max((e["steps_lost"] for e in events), default=0),
        "max_stop_seconds": max(stops) if stops else None,
        "equal_weights": equal_weights,
        "equal_metrics": equal_metrics,
        "problems": problems,
        "reference_seconds": round(ref_seconds, 1),
        "seconds": round(time.time() - t0, 1),
        "events": events,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=[*FAMILIES, "torchrun"], choices=[*FAMILIES, "torchrun"])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--ckpt-every", type=int, default=25)
    p.add_argument("--pause", type=float, default=0.5, help="seconds each checkpoint write pauses before its rename, in half the segments")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("/tmp/genlab_crash"))
    p.add_argument("--out", type=Path, default=OUT / "crash.json")
    a = p.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rows = []
    print(
        f"{'family':<15} {'kills':>5} {'in write (model/ema/state)':>26} {'clean':>5} {'max lost':>8} {'stop s':>6} "
        f"{'weights':>8} {'metrics':>8} {'seconds':>8}"
    )
    for fam in a.families:
        r = crash_family(fam, a.kills, a.ckpt_every, a.pause, a.seed + [*FAMILIES, "torchrun"].index(fam), a.work)
        rows.append(r)
        in_write = f"{r['kills_in_write']} (" + "/".join(str(r["kills_in_write_by_file"].get(n, "-")) for n in CKPT_FILES) + ")"
        stop = f"{r['max_stop_seconds']:.1f}" if r["max_stop_seconds"] is not None else "-"
        weights, metrics = ("equal" if r[k] else "DIFFER" for k in ("equal_weights", "equal_metrics"))
        print(
            f"{fam:<15} {r['kills']:>5} {in_write:>26} {r['clean_resumes']:>5} {r['max_steps_lost']:>8} "
            f"{stop:>6} {weights:>8} {metrics:>8} {r['seconds']:>8.0f}",
            flush=True,
        )
        for problem in r["problems"]:
            print(f"  problem: {problem}", flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    # Rows of families not run this time are kept from the last results, so that families can be run one at a time.
    old = json.loads(a.out.read_text()).get("rows", []) if a.out.is_file() else []
    rows = [r for r in old if r["family"] not in a.families] + rows
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"machine": machine, "kills_per_family": a.kills, "rows": rows}, indent=2) + "\n")
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
