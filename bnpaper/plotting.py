"""Figures in the chapter's language: an Arabic font from PyPI, labels from the glossary.

matplotlib >= 3.11 shapes Arabic itself (libraqm): pass raw Arabic strings, never reshaped ones.
The Arabic font lacks Latin and Greek glyphs, so the family is a fallback list.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt  # in a Jupyter kernel the inline backend; headless elsewhere: Agg
from matplotlib import font_manager

from bnpaper.errors import BnpaperError
from bnpaper.glossary import LANGS, label

ARABIC_FAMILY = "Noto Sans Arabic"
_registered = False
_lang = "en"  # the edition setup() styled figures for


def _register_arabic_font() -> None:
    global _registered
    if _registered:
        return
    try:
        import fontpkg  # from fontpkg-noto-sans-arabic; ships the .ttf inside the wheel

        path = fontpkg.path(ARABIC_FAMILY)
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(
            f"the Arabic font {ARABIC_FAMILY!r} is missing ({e}); install it with "
            "`pip install fontpkg-noto-sans-arabic` (it is in requirements-lock.txt)"
        ) from e
    font_manager.fontManager.addfont(str(path))
    _registered = True


def setup(lang: str = "en") -> None:
    """Style figures for one edition: fonts that render Arabic joined and Latin/Greek without boxes."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    global _lang
    _register_arabic_font()
    _lang = lang
    family = ["DejaVu Sans", ARABIC_FAMILY] if lang == "en" else [ARABIC_FAMILY, "DejaVu Sans"]
    matplotlib.rcParams.update(
        {
            "font.family": family,
            "axes.unicode_minus": lang == "en",  # U+2212 is missing from the Arabic font
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.autolayout": True,
        }
    )


__all__ = ["setup", "label", "plt", "show", "panel"]


class FigureTextError(BnpaperError, RuntimeError):
    """A figure would show a missing-glyph box, or English in the Arabic edition."""


def panel(i: int, lang: str | None = None) -> str:
    """The i-th panel letter (0-based) in the edition's alphabet: '(a)' / '(أ)'."""
    return f"({label('panel_letters', lang or _lang)[i]})"


def subplots(nrows: int = 1, ncols: int = 1, **kw):
    """plt.subplots with the axes in the edition's reading order: in the Arabic edition the first
    column is drawn on the right, so axes[0] is the panel read first, lettered (أ) by `show`, as
    (a) is in English. A caption can then name the panels by letter in both editions."""
    fig, axes = plt.subplots(nrows, ncols, **kw)
    if _lang == "ar" and ncols > 1:
        axes = axes[..., ::-1] if axes.ndim == 2 else axes[::-1]  # (ncols,) or (nrows, ncols)
    return fig, axes


def figure_texts(fig) -> list[str]:
    """Every string a reader sees in a figure: titles, axis labels, tick labels, legends, notes."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def check(fig, lang: str | None = None) -> None:
    """Draw `fig` and fail on what a reader must not see: a glyph the fonts lack (matplotlib's
    "Glyph ... missing from font(s)" warning, tick labels and mathtext included) and, in the
    Arabic edition, Arabic words in a text that also holds $math$ (mathtext draws them unjoined
    and reversed) or a Latin word outside $math$ that is not a name (bnpaper.book.audit)."""
    import logging
    import re
    import warnings

    from bnpaper.book.audit import latin_words

    lang = lang or _lang
    logged: list[str] = []  # mathtext only logs a glyph it had to replace (a box on the page)
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    mpl_log = logging.getLogger("matplotlib")
    mpl_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.canvas.draw()
    finally:
        mpl_log.removeHandler(handler)
    texts = [str(w.message) for w in caught] + logged
    missing = sorted({t for t in texts if "missing from font" in t or "does not have a glyph" in t})
    if missing:
        raise FigureTextError(f"the figure would show boxes for missing glyphs: {missing}")
    if lang == "ar":
        mixed = [
            t for t in figure_texts(fig) if re.search(r"\$[^$]*\$", t) and re.search("[\u0600-\u06ff]", t)
        ]
        if (
            mixed
        ):  # a text with $math$ goes through mathtext, which neither joins Arabic letters nor orders RTL
            raise FigureTextError(
                f"Arabic and $math$ in one figure text would draw the Arabic unjoined and reversed: {mixed}; "
                "keep a figure's Arabic labels free of $...$ (words, or the symbol on its own)"
            )
        words = latin_words(" ".join(re.sub(r"\$[^$]*\$", " ", t) for t in figure_texts(fig)))
        if words:
            raise FigureTextError(
                f"English in an Arabic figure: {sorted(words)}; put the words in glossary.yml labels "
                "and formulas in $mathtext$"
            )


def _grid_cell(ax, rtl: bool) -> tuple:
    """(row, column) of a subplot in its grid, the columns counted from the right in Arabic; the
    grid, not the drawn position (an image's axes shrink to its aspect and move inside its cell)."""
    spec = ax.get_subplotspec()
    if spec is None:
        box = ax.get_position()
        return (-round(box.y1, 2), -box.x0 if rtl else box.x0)
    spec = spec.get_topmost_subplotspec()  # a colorbar's `ax=` moves its axes into a nested grid
    row, col = spec.rowspan.start, spec.colspan.start
    return (row, -col if rtl else col)


def show(fig=None, panels: bool = True) -> None:
    """Letter the panels of a multi-panel figure ((a), (b) left to right; (أ), (ب) right to left,
    as each edition reads), check it, then show it."""
    fig = fig or plt.gcf()
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    if _lang == "ar":
        plain_log_ticks(fig)
    readable_log_ticks(fig)
    if panels and len(axes) > 1:
        rtl = _lang == "ar"
        axes = sorted(axes, key=lambda ax: _grid_cell(ax, rtl))  # reading order: rows, then columns
        for i, ax in enumerate(axes):
            ax.text(
                1.0 if rtl else 0.0,
                1.02,
                panel(i),
                transform=ax.transAxes,
                ha="right" if rtl else "left",
                va="bottom",
            )
    check(fig)
    plt.show()


def plain_log_ticks(fig) -> None:
    """Arabic edition: log- and symlog-axis tick labels as plain text (1e-01, -1), not mathtext. Mathtext
    sets them in the edition's first font, which has no U+2212 minus and no x: matplotlib logs a
    substitution (not a warning) and draws a box, which the page showed as 10¤1."""
    from matplotlib import ticker

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_major_formatter(ticker.LogFormatter())
                axis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False))
            elif scale == "symlog":  # -10, 0, 1, 100 as plain numbers (mathtext drew -10^0 as ¤10^0)
                axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))


def readable_log_ticks(fig) -> None:
    """Log axes that span at most three decades are labelled at 1, 2 and 5 times the powers of ten,
    as plain numbers (2, 5, 10, 20, 50); minor ticks carry no label on any log axis. matplotlib's
    default labels the minor ticks of a short log axis (2x10^0 3x10^0 4x10^0 ...), which ran into
    each other on the mini-batch and learning-rate axes."""
    import math

    from matplotlib import ticker

    for ax in fig.axes:
        for axis, scale, lim in (
            (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
            (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
        ):
            if scale != "log":
                continue
            lo, hi = sorted(lim)
            if lo > 0 and math.log10(hi / lo) <= 3:
                axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())


def seed_band(ax, curves: list[dict], key: str, label: str, skip_first: bool = False, **kw) -> None:
    """`band` over per-seed curves ({"steps": [...], key: [...]}, one dict per seed): the runs that
    recorded `key`, against the first run's steps (without the first point when `skip_first`: a
    difference between measurements has none there)."""
    import numpy as np

    runs = [c[key] for c in curves if c[key]]
    if runs:
        x = np.asarray(curves[0]["steps"][1:] if skip_first else curves[0]["steps"])
        band(ax, x, runs, label, **kw)


def band(ax, x, runs, label: str, **kw):
    """Mean over runs as a line, +- one std as a shaded band, clipped to the range the runs span at
    each point (a band never shows an accuracy above 1 or a norm below 0 that no run reached: one
    failed seed can make the std larger than the distance to the bound); runs: equal-length lists.

    Runs that stopped early (diverged) are left out of the band and drawn thin and dashed.
    """
    import numpy as np

    full = [r for r in runs if len(r) == len(x)]
    if full:
        a = np.asarray(full, dtype=float)  # (runs, points)
        mean, std = a.mean(0), a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])
        (line,) = ax.plot(x, mean, label=f"{label} (n={len(full)})", **kw)
        lo, hi = np.maximum(mean - std, a.min(0)), np.minimum(mean + std, a.max(0))
        ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
    for r in runs:
        if len(r) != len(x):
            ax.plot(x[: len(r)], r, ls="--", lw=0.8, **kw)
