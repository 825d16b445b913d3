"""Helpers shared by the benchmarks (run as `python bench/<name>.py`, so this folder is on sys.path)."""

from __future__ import annotations

import multiprocessing as mp
import queue


def peak_rss_mb() -> float:
    """This process's own peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    fork + exec, so a spawned child would report its parent's peak when that is larger."""
    import resource

    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_process(fn, *args) -> dict:
    """Run `fn(*args, queue)` in a fresh spawned process (its memory peak and thread settings are its own)
    and return what it puts on the queue; a process that dies is an error, not a hang."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    while True:
        try:
            out = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"{fn.__name__}{args[:1]}: the benchmark process died (exit code {p.exitcode})") from None
    p.join()
    return out
