"""Headless Chromium (Debian's) opens an English and an Arabic page with the network off:
MathJax renders every equation from the local copy, Arabic prose runs right-to-left while code and
math stay left-to-right. Screenshots go to _build/screenshots/ for people to look at."""

from pathlib import Path

import pytest

from bnpaper.book import chromium
from bnpaper.book.chapters import chapters

pytestmark = [pytest.mark.book, pytest.mark.browser]
SHOTS = Path(__file__).resolve().parents[1] / "_build" / "screenshots"

if chromium.executable() is None:
    pytest.skip(chromium.MISSING, allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")

PROBE = """() => {
  const style = (el) => el ? getComputedStyle(el).direction : null;
  const math = document.querySelectorAll('div.math, span.math');
  return {
    bodyDir: style(document.body),
    htmlDir: document.documentElement.getAttribute('dir'),
    mathCount: math.length,
    rendered: document.querySelectorAll('mjx-container').length,
    rawTex: Array.from(math)
      .filter(e => !e.querySelector('mjx-container'))
      .map(e => e.textContent.slice(0, 60)),
    mathDir: style(document.querySelector('mjx-container')),
    preDir: style(document.querySelector('div.cell_input pre, div.highlight pre')),
    outputDir: style(document.querySelector('div.cell_output')),
    proseDir: style(document.querySelector('article p')),
    mathjaxErrors: document.querySelectorAll('mjx-merror').length,
  };
}"""


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = chromium.launch(p)
        yield b
        b.close()


def open_offline(browser, url):
    ctx = browser.new_context(offline=True, viewport={"width": 1300, "height": 1000})
    page = ctx.new_page()
    remote = []

    def block(route):
        remote.append(route.request.url)
        route.abort()

    page.route("http*://**", block)
    page.goto(url)
    if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\" i]')"):  # pages with math
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000
        )
        page.evaluate("() => MathJax.startup.promise")
    return ctx, page, remote


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_page_renders_offline(smoke_book, browser, lang):
    ctx, page, remote = open_offline(browser, (smoke_book / lang / "01_bn_transform.html").as_uri())
    try:
        r = page.evaluate(PROBE)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"01_bn_transform.{lang}.png"), full_page=False)
        page.locator("#equation-eq-collapsed").screenshot(path=str(SHOTS / f"eq-collapsed.{lang}.png"))
    finally:
        ctx.close()
    assert remote == [], f"the page tried to load {remote}"
    assert r["mathCount"] >= 11 and r["rawTex"] == [], r
    assert r["rendered"] >= r["mathCount"] and r["mathjaxErrors"] == 0, r
    assert r["mathDir"] == "ltr" and r["preDir"] == "ltr", r
    if lang == "ar":
        assert r["htmlDir"] == "rtl" and r["bodyDir"] == "rtl" and r["proseDir"] == "rtl", r
        assert r["outputDir"] == "rtl", r
    else:
        assert r["bodyDir"] == "ltr" and r["proseDir"] == "ltr", r


DIRECTIONS = """() => {
  const dir = (el) => getComputedStyle(el).direction;
  const pick = (sel) => Array.from(document.querySelectorAll(sel)).filter(el => !el.closest('pre'));
  const out = {};
  for (const [name, sel] of Object.entries({
      captions: 'figcaption, div.cell_output figcaption, caption',
      cells: 'div.cell_output td, div.cell_output th',
      outputText: 'div.cell_output p',
      outputPre: 'div.cell_output pre'})) {
    const els = sel === 'div.cell_output pre' ? Array.from(document.querySelectorAll(sel)) : pick(sel);
    out[name] = {n: els.length, dirs: Array.from(new Set(els.map(dir)))};
  }
  return out;
}"""


def chapter_pages(smoke_book, lang):
    return sorted(p.name for p in (smoke_book / lang).glob("[0-9][0-9]_*.html"))


@pytest.mark.parametrize("page", [f"{name}.html" for name in chapters() if name != "00_intro"])
def test_arabic_outputs_run_right_to_left(smoke_book, browser, page):
    """Captions, table cells and the ledger's cells are RTL; plain-text outputs stay LTR."""
    assert page in chapter_pages(smoke_book, "ar")
    ctx, pg, _ = open_offline(browser, (smoke_book / "ar" / page).as_uri())
    try:
        r = pg.evaluate(DIRECTIONS)
        SHOTS.mkdir(parents=True, exist_ok=True)
        if page == "02_conv.html":  # one table and one figure of the Arabic edition, for people to look at
            pg.locator("div.cell_output table").first.screenshot(path=str(SHOTS / "table.ar.png"))
        if page == "07_figure1.html":
            pg.locator("figure").first.screenshot(path=str(SHOTS / "figure.ar.png"))
    finally:
        ctx.close()
    assert r["captions"]["dirs"] in ([], ["rtl"]), r
    assert r["cells"]["dirs"] in ([], ["rtl"]) and r["outputText"]["dirs"] in ([], ["rtl"]), r
    assert r["outputPre"]["dirs"] in ([], ["ltr"]), r
    if page != "00_intro.html":
        assert r["captions"]["n"] + r["cells"]["n"] > 0, f"{page}: no caption or table found: {r}"


ORDER = """([cellText, parts]) => {
  // the visual centre of each substring (its first line box) inside the first cell holding cellText
  const cell = Array.from(document.querySelectorAll('div.cell_output td'))
    .find(td => td.textContent.includes(cellText));
  if (!cell) return null;
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  const xs = {};
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const part of parts) {
      const i = node.data.indexOf(part);
      if (i >= 0 && !(part in xs)) {
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + part.length);
        const r = range.getClientRects()[0];
        xs[part] = {cx: r.x + r.width / 2, cy: r.y + r.height / 2};
      }
    }
  }
  return xs;
}"""


def reads_before(a: dict, b: dict, rtl: bool) -> bool:
    """Visual reading order of two boxes: an earlier line first; on one line, the right one first
    in right-to-left text, the left one in left-to-right text."""
    if abs(a["cy"] - b["cy"]) > 3:
        return a["cy"] < b["cy"]
    return a["cx"] > b["cx"] if rtl else a["cx"] < b["cx"]


def test_mixed_arabic_number_cells_read_in_order(smoke_book, browser):
    """A ledger cell «13.3 مليون خطوة مقابل 31.0 مليون (2.3x)» reads right-to-left: the first number
    is right of the second; inside an isolated interval «0.48 [-0.73, 1.70]» the value is left of
    its bracket, as in English."""
    ctx, pg, _ = open_offline(browser, (smoke_book / "ar" / "08_claims.html").as_uri())
    try:
        xs = pg.evaluate(ORDER, ["مليون خطوة مقابل", ["13.3", "31.0", "مقابل"]])
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.locator("div.cell_output table").first.screenshot(path=str(SHOTS / "ledger.ar.png"))
        cell = pg.evaluate(
            """() => (Array.from(document.querySelectorAll('div.cell_output td'))
                 .map(td => td.textContent.replace(/[\\u2066-\\u2069]/g, '').trim())
                 .find(t => /^-?[0-9.]+ \\[/.test(t)) || null)"""
        )
        value = cell.split(" [")[0] if cell else None
        inside = pg.evaluate(ORDER, [value + " [", [value, "["]]) if cell else None
    finally:
        ctx.close()
    assert xs is not None, "the ledger has no row with «مليون خطوة مقابل»"
    assert reads_before(xs["13.3"], xs["مقابل"], rtl=True) and reads_before(
        xs["مقابل"], xs["31.0"], rtl=True
    ), f"the cell does not read right-to-left: {xs}"
    assert inside is not None and reads_before(inside[value], inside["["], rtl=False), (
        f"the interval {cell!r} is not LTR: {inside}"
    )


@pytest.mark.parametrize("query", ["بالحزمة", "المطبَّعة"])
def test_arabic_search_finds_inflected_forms(smoke_book, browser, query):
    """Sphinx has no Arabic search; bnpaper.book.search_ar stems with snowball's Arabic stemmer and
    normalises diacritics: «بالحزمة» (a form the pages may never use) finds the chapters."""
    from urllib.parse import quote

    url = (smoke_book / "ar" / "search.html").as_uri() + "?q=" + quote(query)
    ctx, pg, remote = open_offline(browser, url)
    try:
        pg.wait_for_selector("#search-results ul.search li", timeout=20000)
        hits = pg.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    finally:
        ctx.close()
    assert remote == [], remote
    assert any("01_bn_transform.html" in h for h in hits), f"{query}: {hits}"


def test_screenshots_of_the_pages_a_reviewer_checks_first_are_not_blank(smoke_book):
    """bnpaper screenshots: the ledger, chapter 01's derivation and chapter 07, both editions, each
    a picture with text on it (a blank capture was what plain `chromium --screenshot` gave). Run as
    the command a reader types, in its own process (this module's browser holds playwright here)."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    from bnpaper.book import screenshots

    build = smoke_book.parent
    r = subprocess.run(
        [sys.executable, "-m", "bnpaper", "screenshots", "--build-dir", str(build)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    written = sorted((build / "screenshots").glob("*.png"))
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{lang}.png" for name, *_ in screenshots.SHOTS for lang in ("en", "ar")
    )
    for p in written:
        pixels = np.asarray(Image.open(p).convert("L"), dtype=float)
        assert pixels.shape[1] == screenshots.WIDTH and pixels.std() > 10, p.name  # ink, not one colour
