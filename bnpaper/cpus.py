"""How many CPUs are free now: the size of the worker pool and of each process's torch threads.

Torch's intra-op thread pool takes every core by default; on a small machine where something else
is running, its threads then fight that work for the cores and everything slows down 3-10x
(measured on the 2-core development machine: chapters 3-10x slower beside a second job).
So bnpaper sizes its workers, and the threads of each chapter's kernel, from the CPUs this
process may use less those other work keeps busy right now. No torch import here: the book
pipeline asks before any kernel starts.
"""

from __future__ import annotations

import os
import time


def _cpu_times(cpus: set[int]) -> tuple[float, float]:
    """(busy, total) jiffies over the given CPUs, from their `cpuN` lines in /proc/stat."""
    busy = total = 0.0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            if int(name[3:]) in cpus:
                fields = [float(v) for v in values]
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
                busy, total = busy + sum(fields) - idle, total + sum(fields)
    return busy, total


def _allowed_set() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def busy_cpus(sample_s: float = 0.3) -> float:
    """How many of the CPUs this process may use other work keeps busy now (sampled over
    sample_s); 0 where /proc is absent."""
    allowed = _allowed_set()
    try:
        b0, t0 = _cpu_times(allowed)
        time.sleep(sample_s)
        b1, t1 = _cpu_times(allowed)
    except (OSError, ValueError, IndexError):
        return 0.0
    return (b1 - b0) / max(t1 - t0, 1e-9) * len(allowed)


def cgroup_quota() -> float | None:
    """CPUs' worth of time the cgroup (v2 cpu.max) allows, or None where there is no quota."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else float(quota) / float(period)


def allowed_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, capped by a cgroup CPU quota)."""
    n = len(_allowed_set())
    quota = cgroup_quota()
    return max(1, min(n, int(quota))) if quota else n


def free_cpus() -> int:
    """Allowed CPUs less the busy ones, never fewer than one. BNPAPER_WORKERS overrides."""
    if os.environ.get("BNPAPER_WORKERS"):
        return max(1, int(os.environ["BNPAPER_WORKERS"]))
    allowed = allowed_cpus()
    return max(1, min(allowed, round(allowed - busy_cpus())))
