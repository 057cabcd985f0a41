"""How many CPUs are free now: the size of the worker pool and of each process's torch threads.

Torch's intra-op thread pool takes every core by default; on a small machine where something else
is running, its threads then fight that work for the cores and everything slows down 3-10x
(TOOLCHAIN.md). So bnpaper sizes its workers, and the threads of each chapter's kernel, from the
CPUs this process may use less those other work keeps busy right now. No torch import here: the
book pipeline asks before any kernel starts.
"""

from __future__ import annotations

import os
import time


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cpus(sample_s: float = 0.3) -> float:
    """How many CPUs other work keeps busy now (sampled over sample_s); 0 where /proc is absent."""
    try:
        b0, t0 = _cpu_times()
        time.sleep(sample_s)
        b1, t1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (b1 - b0) / max(t1 - t0, 1e-9) * (os.cpu_count() or 1)


def allowed_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cpus() -> int:
    """Allowed CPUs less the busy ones, never fewer than one. BNPAPER_WORKERS overrides."""
    if os.environ.get("BNPAPER_WORKERS"):
        return max(1, int(os.environ["BNPAPER_WORKERS"]))
    allowed = allowed_cpus()
    return max(1, min(allowed, round(allowed - busy_cpus())))
