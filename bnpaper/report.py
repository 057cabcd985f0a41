"""Putting computed numbers into the prose: `glue(name, value)` for `{glue:text}` / `{glue:md}`.

myst-nb formats `{glue:text}`name:.3f`` from the value's text/plain repr, which for numpy
scalars is "np.float64(0.97)" and cannot be formatted; this converts numpy scalars and arrays of
one element to Python numbers first, and never displays the value in the cell.
"""

from __future__ import annotations

import numbers

import numpy as np
from IPython.display import Markdown
from myst_nb import glue as _glue


def plain(value):
    """numpy scalars -> int / float / bool; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value


def glue(name: str, value) -> None:
    """Glue a number (for {glue:text}`name:fmt`) or a str (for {glue:md}`name`, shown as text)."""
    value = plain(value)
    if isinstance(value, str):
        _glue(name, Markdown(value), display=False)
    elif isinstance(value, (numbers.Number, bool)) or value is None:
        _glue(name, value if value is not None else float("nan"), display=False)
    else:
        raise TypeError(f"glue {name!r}: expected a number or a str, got {type(value).__name__}")
