"""Figures in Arabic: the PyPI Arabic font is registered and every glyph of a mixed label exists."""

import warnings

import matplotlib

matplotlib.use("Agg")

import pytest

from bnpaper import plotting


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_labels_render_without_missing_glyphs(lang):
    plotting.setup(lang)
    fig, ax = plotting.plt.subplots()
    ax.set_xlabel(plotting.label("steps", lang))
    ax.set_ylabel(plotting.label("bn_input", lang) + " μ σ²")  # Arabic, Latin and Greek in one label
    ax.set_title(plotting.label("relative_logit_gap", lang))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plotting.plt.close(fig)
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert missing == []


def test_arabic_font_comes_from_the_pypi_package():
    import fontpkg
    from matplotlib import font_manager

    plotting.setup("ar")
    path = font_manager.findfont(
        font_manager.FontProperties(family=plotting.ARABIC_FAMILY), fallback_to_default=False
    )
    assert "Arabic" in path  # Debian's Noto Sans Arabic may win over the PyPI copy; both have the glyphs
    assert plotting.ARABIC_FAMILY in {
        f.name
        for f in font_manager.fontManager.ttflist
        if f.fname == str(fontpkg.path(plotting.ARABIC_FAMILY))
    }
    assert matplotlib.rcParams["font.family"][0] == plotting.ARABIC_FAMILY
    with pytest.raises(ValueError, match="lang must be one of"):
        plotting.setup("fr")
