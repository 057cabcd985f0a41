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


def _log_figure(lang):
    plotting.setup(lang)
    fig, axes = plotting.plt.subplots(1, 2)
    axes[0].plot([1, 2, 3], [1e-18, 1e-9, 1e-3])  # negative exponents on the tick labels
    axes[0].set(yscale="log", xlabel=plotting.label("steps", lang), title=r"$\epsilon = 10^{-3}$")
    axes[1].plot([0, 1], [-1, 1], label=plotting.label("with_bn", lang))
    axes[1].legend()
    if lang == "ar":
        plotting.plain_log_ticks(fig)  # as show() does: mathtext ticks would draw a box for the minus
    return fig


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_check_passes_a_figure_with_log_ticks_mathtext_and_a_legend(lang):
    fig = _log_figure(lang)
    try:
        plotting.check(fig)
        texts = " ".join(plotting.figure_texts(fig))
    finally:
        plotting.plt.close(fig)
    assert "10" in texts and plotting.label("with_bn", lang) in texts  # tick labels and legends are seen


def test_check_fails_on_a_glyph_no_font_has():
    fig = _log_figure("ar")
    fig.axes[1].set_title("字")
    with pytest.raises(plotting.FigureTextError, match="missing glyphs"):
        plotting.check(fig)
    plotting.plt.close(fig)


def test_check_fails_on_english_in_an_arabic_figure_but_not_in_math_or_the_english_edition():
    fig = _log_figure("ar")
    fig.axes[1].set_xlabel("unit 8")
    with pytest.raises(plotting.FigureTextError, match="unit"):
        plotting.check(fig)
    fig.axes[1].set_xlabel(r"$\|W_1\|$")  # a formula on its own: mathtext, no Arabic to break
    plotting.check(fig)
    plotting.plt.close(fig)
    fig = _log_figure("en")
    fig.axes[1].set_xlabel("unit 8")
    plotting.check(fig)
    plotting.plt.close(fig)


def test_check_fails_on_arabic_and_math_in_one_label():
    """mathtext neither joins Arabic letters nor orders them right to left: such a label would
    read «ةينيسلا» for «السينية»."""
    fig = _log_figure("ar")
    fig.axes[1].set_xlabel(r"مخرج الدالة السينية $h$")
    with pytest.raises(plotting.FigureTextError, match="unjoined and reversed"):
        plotting.check(fig)
    fig.axes[1].set_xlabel("مخرج الدالة السينية")
    plotting.check(fig)
    plotting.plt.close(fig)


def test_panel_letters_follow_the_edition():
    assert [plotting.panel(i, "en") for i in range(3)] == ["(a)", "(b)", "(c)"]
    assert [plotting.panel(i, "ar") for i in range(3)] == ["(أ)", "(ب)", "(ج)"]
    fig = _log_figure("ar")
    plotting.show(fig)  # letters the two panels, checks, and shows (Agg: nothing on screen)
    letters = {t.get_text(): ax for ax in fig.axes for t in ax.texts}
    plotting.plt.close(fig)
    assert set(letters) == {"(أ)", "(ب)"}
    assert letters["(أ)"] is fig.axes[1] and letters["(ب)"] is fig.axes[0]  # an Arabic reader starts right
    fig = _log_figure("en")
    plotting.show(fig)
    letters = {t.get_text(): ax for ax in fig.axes for t in ax.texts}
    plotting.plt.close(fig)
    assert letters["(a)"] is fig.axes[0] and letters["(b)"] is fig.axes[1]


def test_every_chapter_figure_goes_through_show():
    """plotting.show() checks glyphs and English in every figure of every build; a figure drawn
    without it would escape the check."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "notebooks"
    for path in sorted(root.glob("[0-9][0-9]_*.md")):
        cells = re.findall(r"```\{code-cell\}.*?\n```", path.read_text(encoding="utf-8"), re.DOTALL)
        for cell in cells:
            if "subplots(" in cell or "plt.figure(" in cell:
                assert "plotting.show(" in cell and "plt.show()" not in cell, f"{path.name}: {cell[:200]}"


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_subplots_hand_out_axes_in_reading_order(lang):
    """axes[0] is the panel read first: on the left in English, on the right in Arabic; both (a)/(أ)."""
    plotting.setup(lang)
    try:
        fig, axes = plotting.subplots(2, 3)
        x0 = [[ax.get_position().x0 for ax in row] for row in axes]
        y0 = [[ax.get_position().y0 for ax in row] for row in axes]
        plotting.show(fig)
        first = [t.get_text() for t in axes[0, 0].texts]
        fig1, row = plotting.subplots(1, 2)
        order = row[0].get_position().x0 > row[1].get_position().x0
        plotting.plt.close(fig)
        plotting.plt.close(fig1)
    finally:
        plotting.setup("en")
    rtl = lang == "ar"
    assert all((r[0] > r[1] > r[2]) if rtl else (r[0] < r[1] < r[2]) for r in x0)
    assert y0[0][0] > y0[1][0]  # rows stay top to bottom
    assert first == [plotting.panel(0, lang)] and order == rtl


def test_a_band_stays_within_what_the_runs_reached():
    """Issue 27: nine runs near accuracy 0.99 and one at chance give a std (0.28) larger than the
    distance to 1.0; the band must not show an accuracy above the best run or below the worst."""
    import numpy as np

    from bnpaper import plotting

    runs = [[0.98 + 0.001 * i, 0.99] for i in range(9)] + [[0.1, 0.1]]
    fig, ax = plotting.plt.subplots()
    plotting.band(ax, [1, 2], runs, "arm")
    ys = np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])
    a = np.asarray(runs)
    assert ys.max() <= a.max() + 1e-12 and ys.min() >= a.min() - 1e-12
    assert a.mean(0).max() + a.std(0, ddof=1).max() > 1.0  # unclipped, it would have crossed 1.0
    plotting.plt.close(fig)


def test_arabic_log_axes_draw_every_glyph():
    """A log axis in the Arabic edition showed 10¤1: mathtext tick labels in the Arabic font, which
    has no minus sign. matplotlib only logs that substitution, so this test listens to its log."""
    import io
    import logging

    from bnpaper import plotting

    plotting.setup("ar")
    try:
        buf = io.StringIO()
        handler = logging.StreamHandler(buf)
        logging.getLogger("matplotlib").addHandler(handler)
        fig, ax = plotting.plt.subplots()
        ax.plot([1, 2], [0.005, 30])
        ax.set(yscale="log", xscale="log")
        plotting.plain_log_ticks(fig)
        fig.canvas.draw()
        logging.getLogger("matplotlib").removeHandler(handler)
        assert "does not have a glyph" not in buf.getvalue()
        assert any("e-0" in t.get_text() for t in ax.get_yticklabels())
        plotting.plt.close(fig)
    finally:
        plotting.setup("en")


def test_check_fails_on_a_glyph_mathtext_only_logs_and_symlog_ticks_are_plain_in_arabic():
    """A symlog axis drew -10^0 as ¤10^0 in Arabic: check() now reads matplotlib's log, where
    mathtext reports the glyph it replaced, and plain_log_ticks writes symlog ticks as plain text."""
    from bnpaper import plotting

    plotting.setup("ar")
    try:
        fig, ax = plotting.plt.subplots()
        ax.plot([-5, 300], [1, 2])
        ax.set(xscale="symlog")
        with pytest.raises(plotting.FigureTextError, match="does not have a glyph"):
            plotting.check(fig)  # mathtext ticks, as matplotlib draws them by default
        plotting.plain_log_ticks(fig)
        plotting.check(fig)
        assert "-1" in [t.get_text() for t in ax.get_xticklabels()]
        plotting.plt.close(fig)
    finally:
        plotting.setup("en")


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_short_log_axis_is_labelled_at_1_2_5_and_minor_ticks_stay_unlabelled(lang):
    """Mini-batch sizes 2..64 on a log axis: labels 2, 5, 10, 20, 50 and no '2x10^0 3x10^0 ...'."""
    plotting.setup(lang)
    try:
        fig, ax = plotting.plt.subplots()
        ax.plot([2, 64], [1e-6, 1e2])
        ax.set(xscale="log", yscale="log")
        if lang == "ar":
            plotting.plain_log_ticks(fig)
        plotting.readable_log_ticks(fig)
        fig.canvas.draw()
        shown = [t.get_text() for t in ax.get_xticklabels() if 2 <= t.get_position()[0] <= 64]
        assert shown == ["2", "5", "10", "20", "50"]
        assert all(t.get_text() == "" for t in ax.xaxis.get_minorticklabels())
        assert all(t.get_text() == "" for t in ax.yaxis.get_minorticklabels())  # 8 decades: majors only
        plotting.check(fig)
        plotting.plt.close(fig)
    finally:
        plotting.setup("en")
