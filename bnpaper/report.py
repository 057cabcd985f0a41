"""Putting computed numbers into the prose: `glue(name, value)` for `{glue:text}` / `{glue:md}`.

myst-nb formats `{glue:text}`name:.3f`` from the value's text/plain repr, which for numpy
scalars is "np.float64(0.97)" and cannot be formatted; this converts numpy scalars and arrays of
one element to Python numbers first, and never displays the value in the cell.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

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


def publish_data(name: str, lang: str, **payload) -> Markdown:
    """Save the data behind a figure or table as JSON next to the chapter, and return the link.

    The file is $BNPAPER_FIGDATA/<chapter>-<name>.json (the pipeline copies it into the edition as
    data/...); payload should hold the config and the results the figure was drawn from.
    """
    from bnpaper.cache import source_hash, write_json_atomic
    from bnpaper.glossary import label

    chapter = os.environ.get("BNPAPER_CHAPTER", "notebook")
    path = Path(os.environ.get("BNPAPER_FIGDATA", "_build/figdata")) / f"{chapter}-{name}.json"
    write_json_atomic(path, {"chapter": chapter, "figure": name, "bnpaper_source": source_hash(), **payload})
    return Markdown(f"{label('raw_data', lang)}: {{download}}`data/{path.name}`")


def status(lang: str, data: str, **fields) -> Markdown:
    """One line saying what a chapter runs, in its edition's language: the data, then each field
    as 'label value' (labels from glossary.yml `status_<field>`; values by `status_value`)."""
    from bnpaper.glossary import label

    parts = [data] + [f"{label('status_' + k, lang)} {status_value(v, lang)}" for k, v in fields.items()]
    return Markdown(" · ".join(parts))


def status_value(v, lang: str) -> str:
    """A status value as a reader writes it, not as Python prints it: consecutive whole numbers as a
    range (500–509), other lists joined by the edition's comma, {arm: value} as `arm` value pairs,
    numbers in their shortest form; numbers left-to-right in the Arabic edition."""
    from bnpaper.bidi import ltr

    comma = "، " if lang == "ar" else ", "
    if isinstance(v, dict):
        return comma.join(f"`{k}` {status_value(x, lang)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        ints = all(isinstance(x, int) and not isinstance(x, bool) for x in v)
        if ints and len(v) > 2 and list(v) == list(range(v[0], v[0] + len(v))):
            return ltr(f"{v[0]}–{v[-1]}", lang)
        return comma.join(status_value(x, lang) for x in v)
    if isinstance(v, float):
        return ltr(f"{v:g}", lang)
    if isinstance(v, int) and not isinstance(v, bool):
        return ltr(f"{v:,}", lang)
    return f"`{v}`"
