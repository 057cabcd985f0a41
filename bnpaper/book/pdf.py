"""A PDF of each edition, printed by headless Chromium from a single-page build.

`bnpaper pdf` (= `make pdf`) takes the sources the last `bnpaper book` assembled (build_dir/src/<lang>),
builds each edition as one HTML page (Jupyter Book's `singlehtml` builder), opens it offline in the
Chromium the tests use (the browser shapes Arabic and lays out right to left; MathJax renders every
equation before printing), puts a cover in front (title, edition, date, git revision, profile), and
prints build_dir/pdf/bnpaper-<lang>.pdf with page numbers and a document outline (PDF bookmarks)
for chapters and sections. Every character of the visible text is checked against the installed
fonts before printing: a character no font has would print as an empty box.
"""

from __future__ import annotations

import functools
import html
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bnpaper.book import chromium
from bnpaper.errors import BnpaperError

BOOK = Path(__file__).resolve().parents[2] / "book"
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))

PRINT_CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-footer, .bd-footer-article,
.header-article, .prev-next-area, .bnpaper-langswitch, .headerlink, .toggle-secondary-sidebar,
.bd-search, .search-button, .theme-switch-button, .article-header-buttons, #pst-back-to-top,
.bd-header-announcement, .skip-link { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-page-width { max-width: 100% !important; }
.bnpaper-cover { page-break-after: always; break-after: page; display: block; padding-top: 70mm;
  text-align: center; color: #111 !important; opacity: 1 !important; visibility: visible !important; }
.bnpaper-cover h1 { font-size: 28pt; margin-bottom: 12mm; border: none; }
.bnpaper-cover p { font-size: 12pt; margin: 2mm 0; }
section > h1 { page-break-before: always; }
figure, img, table, .cell_output { page-break-inside: avoid; }
"""
FOOTER = (
    '<div style="font-size:8px;width:100%;text-align:center;color:#555;">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)


class PdfError(BnpaperError, RuntimeError):
    """A PDF could not be made: no book built yet, a failed single-page build, a missing glyph."""


def single_page(lang: str, build_dir: Path) -> Path:
    """Jupyter Book's singlehtml build of an edition's assembled sources; returns its one page."""
    src = Path(build_dir) / "src" / lang
    if not (src / "_toc.yml").exists():
        raise PdfError(f"no {lang} edition sources in {src}: run `make book` (or `bnpaper book`) first")
    out = Path(build_dir) / "pdfstage" / lang
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--path-output", str(out)]
    cmd += ["--builder", "singlehtml", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    root = yaml.safe_load((src / "_toc.yml").read_text(encoding="utf-8"))["root"]  # index.html only redirects
    page = out / "_build" / "singlehtml" / f"{root}.html"
    if proc.returncode != 0 or not page.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise PdfError(
            f"the single-page build of the {lang} edition failed (exit {proc.returncode}):\n{tail}"
        )
    return page


def cover_html(lang: str, meta: dict) -> str:
    """The first page: the edition's title, the paper, and where this copy comes from."""
    ed = yaml.safe_load((BOOK / "editions.yml").read_text(encoding="utf-8"))[lang]
    words = ed["pdf_cover"]
    rows = [
        f"<p>{html.escape(words['edition'])}</p>",
        f"<p>{html.escape(words['paper'])}</p>",
        f'<p>{html.escape(words["date"])}: <span dir="ltr">{html.escape(meta["date"])}</span></p>',
        f'<p>{html.escape(words["revision"])}: <code dir="ltr">{html.escape(meta["git"])}</code></p>',
        f'<p>{html.escape(words["profile"])}: <code dir="ltr">{html.escape(meta["profile"])}</code></p>',
    ]
    return f'<section class="bnpaper-cover"><h1>{html.escape(ed["title"])}</h1>{"".join(rows)}</section>'


def build_meta(build_dir: Path, lang: str) -> dict:
    """Date, git revision and profile of the executed chapters of one edition."""
    records = sorted((Path(build_dir) / "executed" / lang).glob("*.run.json"))
    if not records:
        raise PdfError(f"no executed {lang} chapters in {build_dir}/executed: run `make book` first")
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in records]
    profiles = sorted({r["params"]["profile"] for r in runs})
    revisions = sorted({r.get("git", "unknown") for r in runs})
    dates = sorted(r.get("started", "")[:10] for r in runs)
    return {"date": dates[-1], "git": ", ".join(revisions), "profile": ", ".join(profiles)}


@functools.cache
def _font_coverage() -> frozenset[int]:
    """Every code point some installed font (TrueType / OpenType) maps to a glyph."""
    from fontTools.ttLib import TTCollection, TTFont

    points: set[int] = set()
    for d in FONT_DIRS:
        for path in sorted(d.rglob("*")) if d.exists() else []:
            suffix = path.suffix.lower()
            try:
                if suffix in (".ttf", ".otf"):
                    fonts = [TTFont(path, lazy=True)]
                elif suffix == ".ttc":
                    fonts = list(TTCollection(path, lazy=True).fonts)
                else:
                    continue
                for f in fonts:
                    cmap = f.getBestCmap() or {}
                    points.update(cmap)
            except Exception:  # noqa: BLE001 - an unreadable font file covers nothing
                continue
    return frozenset(points)


def uncovered(text: str) -> set[str]:
    """The characters of text that no installed font can draw (whitespace and controls aside)."""
    have = _font_coverage()
    return {
        c for c in set(text) if not c.isspace() and ord(c) >= 0x20 and ord(c) not in have and c.isprintable()
    }


# visible text outside math (MathJax draws its glyphs from its own web fonts)
VISIBLE_TEXT = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest('mjx-container, script, style, .math')) continue;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden') continue;
    out.push(n.textContent);
  }
  return out.join(' ');
}"""


HEADINGS = """() => Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6'))
  .filter(e => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
  .map(e => e.innerText.replace(/#\\s*$/, '').trim())
  .filter(t => t.length > 0)"""


def _letters(text: str) -> str:
    """The characters of a title without spaces, sorted: the same in visual and logical order,
    wherever the reversal moved a space or a colon."""
    return "".join(sorted(text.replace("\u00a0", "").replace(" ", "")))


def _outline_items(root) -> list:
    out, stack = [], []
    node = root["/Outlines"].get_object().get("/First") if "/Outlines" in root else None
    while node is not None or stack:
        if node is None:
            node = stack.pop()
            continue
        item = node.get_object()
        out.append(item)
        if "/Next" in item:
            stack.append(item["/Next"])
        node = item.get("/First")
    return out


def fix_outline(pdf_path: Path, headings: list[str]) -> int:
    """Chromium builds each bookmark from the heading's laid-out lines: a right-to-left heading comes
    out in visual order (its words reversed), a heading that wraps loses the space at the break, and
    some come out twice. Give each bookmark its heading's own text, matched by its characters in
    document order. Returns how many titles changed."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import NameObject, TextStringObject

    writer = PdfWriter(clone_from=PdfReader(pdf_path))
    pending, changed = list(headings), 0
    for item in _outline_items(writer._root_object):
        title = str(item["/Title"])
        for i, h in enumerate(pending):  # the next heading with the same words
            if _letters(title) in (_letters(h), _letters(h + h)):  # (Chromium may write a title twice)
                if h != title:
                    item[NameObject("/Title")] = TextStringObject(h)
                    changed += 1
                del pending[: i + 1]
                break
    tmp = pdf_path.with_suffix(".outline.tmp")
    with open(tmp, "wb") as f:
        writer.write(f)
    tmp.replace(pdf_path)
    return changed


def print_pdf(page_html: Path, out: Path, lang: str, meta: dict) -> dict:
    """Open the single page offline, add the cover, check every glyph, print with an outline."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = chromium.launch(p)
        try:
            ctx = browser.new_context(offline=True)
            page = ctx.new_page()
            page.route("http*://**", lambda route: route.abort())
            page.goto(page_html.as_uri(), wait_until="load")
            if page.evaluate("() => !!document.querySelector('script[src*=\"mathjax\" i]')"):
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60000
                )
                page.evaluate("() => MathJax.startup.promise")
            page.add_style_tag(content=PRINT_CSS)
            page.evaluate(
                "(c) => document.body.insertAdjacentHTML('afterbegin', c)",
                cover_html(lang, meta),
            )
            raw = page.evaluate(
                "() => Array.from(document.querySelectorAll('.math'))"
                ".filter(e => !e.querySelector('mjx-container')).length"
            )
            if raw:
                raise PdfError(f"{raw} equations of the {lang} edition did not render (MathJax)")
            missing = uncovered(page.evaluate(VISIBLE_TEXT))
            if missing:
                shown = " ".join(f"U+{ord(c):04X}" for c in sorted(missing)[:12])
                raise PdfError(
                    f"the {lang} edition shows characters no installed font can draw ({shown}); "
                    "install the fonts the book needs (make system-deps: fonts-noto-core)"
                )
            page.emulate_media(media="print")
            headings = page.evaluate(HEADINGS)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".pdf.tmp")
            page.pdf(
                path=str(tmp),
                format="A4",
                print_background=True,
                outline=True,
                tagged=True,
                display_header_footer=True,
                header_template="<div></div>",
                footer_template=FOOTER,
                margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"},
            )
            tmp.replace(out)
            fixed = fix_outline(out, headings)
        finally:
            browser.close()
    return {"path": str(out), "bytes": out.stat().st_size, "outline_fixed": fixed}


def build_pdfs(build_dir: Path = Path("_build"), langs: tuple[str, ...] = ("en", "ar")) -> dict:
    """Both PDFs from the last book build; returns {lang: {path, bytes, seconds}}."""
    if chromium.executable() is None:
        raise PdfError(chromium.MISSING)
    out = {}
    for lang in langs:
        t0 = time.perf_counter()
        meta = build_meta(build_dir, lang)
        page = single_page(lang, build_dir)
        res = print_pdf(page, Path(build_dir) / "pdf" / f"bnpaper-{lang}.pdf", lang, meta)
        out[lang] = {**res, "seconds": time.perf_counter() - t0}
        site = Path(build_dir) / "html" / "downloads"  # the landing page links here
        site.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(res["path"], site / Path(res["path"]).name)
        mb, s = res["bytes"] / 2**20, out[lang]["seconds"]
        print(f"[bnpaper] pdf {lang}: {res['path']} ({mb:.1f} MB, {s:.0f} s)")
    from bnpaper.book import pages, release

    pages.refresh_landing(Path(build_dir), release.build_profile(Path(build_dir)))  # now with the PDFs
    return out
