"""Progress bars for long runs, shown in the terminal that runs `bnpaper book`, not in the book.

Inside a papermill kernel sys.stdout goes into the notebook; sys.__stderr__ is the kernel
process's own stderr, which is the terminal. BNPAPER_PROGRESS=0 silences it.
"""

from __future__ import annotations

import contextlib
import os
import sys

from tqdm.std import tqdm as _tqdm  # not tqdm.auto: in a kernel it warns "IProgress not found" into the page


def progress(iterable=None, desc: str = "", total: int | None = None, **kw):
    enabled = os.environ.get("BNPAPER_PROGRESS", "1") != "0"
    return _tqdm(
        iterable,
        desc=desc,
        total=total,
        file=sys.__stderr__,
        disable=not enabled,
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
