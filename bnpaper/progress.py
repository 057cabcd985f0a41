"""Progress bars for long runs, shown in the terminal that runs `bnpaper book`, never in the book.

Where a bar goes is said by BNPAPER_PROGRESS:
  "0"            nowhere
  a path         that file, opened by whichever process draws the bar: `bnpaper book` sets it to
                 its terminal (/dev/pts/N), so a chapter's kernel and the engine's worker processes
                 draw there too
  "1" or unset   this process's stderr, if it is a terminal; nowhere otherwise

Why not simply stderr: inside a Jupyter kernel, ipykernel redirects the process's file descriptors
1 and 2 into the notebook, and worker processes spawned from the kernel inherit them, so a bar
written to stderr becomes an output block on the page (issue 27: 191 lines in chapter 07).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

from tqdm.std import tqdm as _tqdm  # not tqdm.auto: in a kernel it warns "IProgress not found" into the page


@functools.cache
def _open(path: str):
    try:
        return open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (kept open: one per process)
    except OSError:
        return None  # a terminal that went away: no bars, the run goes on


def destination(setting: str | None = None):
    """The open file a bar is drawn to, or None (no bar): see the module docstring."""
    setting = os.environ.get("BNPAPER_PROGRESS", "1") if setting is None else setting
    if setting == "0":
        return None
    if setting not in ("", "1"):
        return _open(setting)
    err = sys.__stderr__
    try:
        return err if err is not None and err.isatty() else None
    except ValueError:  # closed
        return None


def terminal() -> str:
    """What `bnpaper book` hands its kernels: the path of its terminal, or "0" without one."""
    try:
        return os.ttyname(sys.__stderr__.fileno()) if sys.__stderr__.isatty() else "0"
    except (OSError, ValueError, AttributeError):
        return "0"


def progress(iterable=None, desc: str = "", total: int | None = None, **kw):
    out = destination()
    return _tqdm(
        iterable,
        desc=desc,
        total=total,
        file=out,
        disable=out is None,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.5,
        **kw,
    )


@contextlib.contextmanager
def quiet():
    """No progress bars inside this block (benchmarks time the work, not the bars)."""
    old = os.environ.get("BNPAPER_PROGRESS")
    os.environ["BNPAPER_PROGRESS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BNPAPER_PROGRESS", None)
        else:
            os.environ["BNPAPER_PROGRESS"] = old
