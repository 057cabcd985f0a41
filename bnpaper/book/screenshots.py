"""Screenshots of the pages a reviewer checks first, both editions, from the last book build:
the claims ledger, chapter 01's derivation and chapter 07 (Figure 1), rendered by Debian's
headless Chromium offline (bnpaper.book.chromium), into BUILD_DIR/screenshots/.

    bnpaper screenshots [--build-dir _build]
"""

from __future__ import annotations

from pathlib import Path

from bnpaper.book import chromium
from bnpaper.errors import MissingError

# (name, page, the element id to start from ("" for the top of the page), how many pixels down)
SHOTS = (
    ("ledger", "08_claims", "", 2400),
    ("derivation", "01_bn_transform", "sec-derivation", 2400),
    ("figure1", "07_figure1", "", 3000),
)
WIDTH = 1280


def take(build_dir: Path, langs: tuple[str, ...] = ("en", "ar")) -> list[Path]:
    """Write one PNG per (shot, edition): the page from its element (or its top) down SHOTS' height,
    after MathJax has typeset it. Returns the files written."""
    from playwright.sync_api import sync_playwright

    html = Path(build_dir) / "html"
    pages = [
        (name, html / lang / f"{page}.html", anchor, h, lang)
        for name, page, anchor, h in SHOTS
        for lang in langs
    ]
    missing = [str(p) for _, p, _, _, _ in pages if not p.is_file()]
    if missing:
        raise MissingError(f"no built page {missing[0]}: build the book first (make book)")
    out_dir = Path(build_dir) / "screenshots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as pw:
        browser = chromium.launch(pw)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            for name, path, anchor, height, lang in pages:
                page.goto(path.resolve().as_uri(), wait_until="load")
                page.wait_for_function(
                    "() => !window.MathJax || !MathJax.startup || MathJax.startup.promise !== undefined",
                    timeout=20_000,
                )
                page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
                top = 0
                if anchor:
                    top = page.evaluate(
                        "id => { const e = document.getElementById(id); "
                        "return e ? e.getBoundingClientRect().top + window.scrollY : 0 }",
                        anchor,
                    )
                full = page.evaluate("() => document.documentElement.scrollHeight")
                clip = {"x": 0, "y": top, "width": WIDTH, "height": max(1, min(height, full - top))}
                target = out_dir / f"{name}.{lang}.png"
                page.screenshot(path=str(target), clip=clip, full_page=True)
                written.append(target)
        finally:
            browser.close()
    return written
