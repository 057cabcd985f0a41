"""Figures in the chapter's language: an Arabic font from PyPI, labels from the glossary.

matplotlib >= 3.11 shapes Arabic itself (libraqm): pass raw Arabic strings, never reshaped ones.
The Arabic font lacks Latin and Greek glyphs, so the family is a fallback list.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt  # in a Jupyter kernel the inline backend; headless elsewhere: Agg
from matplotlib import font_manager

from bnpaper.glossary import LANGS, label

ARABIC_FAMILY = "Noto Sans Arabic"
_registered = False


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
    _register_arabic_font()
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


__all__ = ["setup", "label", "plt"]


def band(ax, x, runs, label: str, **kw):
    """Mean over runs as a line, +- one std as a shaded band; runs: list of equal-length lists.

    Runs that stopped early (diverged) are left out of the band and drawn thin and dashed.
    """
    import numpy as np

    full = [r for r in runs if len(r) == len(x)]
    if full:
        a = np.asarray(full, dtype=float)  # (runs, points)
        mean, std = a.mean(0), a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])
        (line,) = ax.plot(x, mean, label=f"{label} (n={len(full)})", **kw)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line.get_color())
    for r in runs:
        if len(r) != len(x):
            ax.plot(x[: len(r)], r, ls="--", lw=0.8, **kw)
