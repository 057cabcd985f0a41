"""Headless Chromium (Debian's) opens an English and an Arabic page with the network off:
MathJax renders every equation from the local copy, Arabic prose runs right-to-left while code and
math stay left-to-right. Screenshots go to _build/screenshots/ for people to look at."""

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.book, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).resolve().parents[1] / "_build" / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (make system-deps installs it)", allow_module_level=True)
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
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
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
    assert r["mathDir"] == "ltr" and r["preDir"] == "ltr" and r["outputDir"] == "ltr", r
    if lang == "ar":
        assert r["htmlDir"] == "rtl" and r["bodyDir"] == "rtl" and r["proseDir"] == "rtl", r
    else:
        assert r["bodyDir"] == "ltr" and r["proseDir"] == "ltr", r
