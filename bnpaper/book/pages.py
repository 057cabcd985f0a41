"""Pages the pipeline generates for each edition: glossary, reproducibility, references, the
language chooser, and the download link inserted under each chapter's title."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import nbformat
import yaml

from bnpaper.claims_view import md_cell as _cell
from bnpaper.errors import UnknownNameError
from bnpaper.glossary import terms


def _in_lang(text: str, lang: str) -> str:
    """Text in the other edition's language, marked for screen readers, search and direction."""
    return f'<span lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">{text}</span>'


def _sort_key(term: str) -> str:
    """Alphabetical order as a dictionary has it: case-free, and in Arabic without the article."""
    return re.sub(r"^ال", "", term.lower())


def glossary_page(lang: str, s: dict) -> str:
    other = "ar" if lang == "en" else "en"
    rows = sorted(terms(), key=lambda t: _sort_key(getattr(t, lang)))
    lines = [
        f"# {s['glossary_title']}",
        "",
        s["glossary_intro"],
        "",
        f"| {s['col_term']} | {s['col_other']} | {s['col_definition']} |",
        "|---|---|---|",
    ]
    for t in rows:
        star = " \\*" if t.source else ""
        lines.append(
            f"| **{_cell(getattr(t, lang))}**{star} | {_in_lang(_cell(getattr(t, other)), other)} "
            f"| {_cell(getattr(t, 'def_' + lang))} |"
        )
    return "\n".join(lines) + "\n"


def reproducibility_page(
    lang: str, s: dict, records: dict[str, dict], data_files: dict[str, list[str]] | None = None
) -> str:
    f = s["repro_fields"]
    lines = [f"# {s['repro_title']}", "", s["repro_intro"], ""]
    for name, r in records.items():
        lines += [
            f"## `{name}`",
            "",
            f"- {f['profile']}: `{r['params'].get('profile')}`",
            f"- {f['device']}: `{r['params'].get('device')} → {r['device_resolved']}`",
            f"- {f['seeds']}: `{json.dumps(r['seeds'])}`",
            f"- {f['time']}: {r['seconds']} {f['seconds_unit']}",
            f"- {f['when']}: `{r['started']}`",
            f"- {f['git']}: `{r['git']}`",
            f"- {f['source']}: `{r['bnpaper_source']}`",
            f"- {f['versions']}: " + ", ".join(f"`{k} {v}`" for k, v in r["versions"].items()),
            f"- {f['params']}: `{json.dumps(r['params'], ensure_ascii=False)}`",
        ]
        files = (data_files or {}).get(name, [])
        if files:
            lines.append(f"- {f['data']}: " + ", ".join(f"{{download}}`{x} <data/{x}>`" for x in files))
        lines.append("")
    return "\n".join(lines)


def references_page(s: dict) -> str:
    return f"# {s['references_title']}\n\n```{{bibliography}}\n:all:\n```\n"


def add_download_link(nb: nbformat.NotebookNode, filename: str, text: str) -> None:
    """Put a download link for the executed notebook right after the chapter's title cell."""
    if any(c.metadata.get("bnpaper_download") for c in nb.cells):
        return
    cell = nbformat.v4.new_markdown_cell(f"{text} {{download}}`{filename} <{filename}>`")
    cell.metadata["bnpaper_download"] = True
    for i, c in enumerate(nb.cells):
        if c.cell_type == "markdown" and c.source.lstrip().startswith("# "):
            nb.cells.insert(i + 1, cell)
            return
    nb.cells.insert(0, cell)


def add_citation(nb: nbformat.NotebookNode, name: str, lang: str, strings: dict) -> None:
    """End the chapter with "Cite this chapter" in the edition's language and a BibTeX entry for it."""
    if any(c.metadata.get("bnpaper_cite") for c in nb.cells):
        return
    title = next(
        (
            c.source.lstrip()[2:].splitlines()[0].strip()
            for c in nb.cells
            if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")
        ),
        name,
    )
    cff = citation()
    year = str(cff["date-released"])[:4]
    entry = (
        f"@incollection{{bnpaper{year}-{name}-{lang},\n"
        f"  author    = {{{{{strings['cite_author']}}}}},\n"
        f"  title     = {{{title}}},\n"
        f"  booktitle = {{{strings['title']}}},\n"
        f"  note      = {{{strings['cite_note'].format(chapter=int(name[:2]))}}},\n"
        f"  version   = {{{cff['version']}}},\n"
        f"  year      = {{{year}}},\n"
        "}"
    )
    cell = nbformat.v4.new_markdown_cell(f"## {strings['cite_chapter']}\n\n```bibtex\n{entry}\n```")
    cell.metadata["bnpaper_cite"] = True
    nb.cells.append(cell)


# The landing page's `body` rule: one line of CSS on the page, split here only to keep lines short.
_BODY_CSS = (
    'font-family: system-ui, sans-serif, "Noto Sans Arabic"; '
    "max-width: 40rem; margin: 4rem auto; line-height: 1.6;"
)


REPO = Path(__file__).resolve().parents[2]


def citation() -> dict:
    """CITATION.cff, parsed: the one source of the book's citation."""
    return yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))


def book_bibtex() -> str:
    """The book's BibTeX entry, written from CITATION.cff (so the two cannot disagree)."""
    cff = citation()
    authors = " and ".join(
        "{" + a["name"] + "}" if "name" in a else f"{a['family-names']}, {a['given-names']}"
        for a in cff["authors"]
    )
    year = str(cff["date-released"])[:4]
    return (
        f"@software{{bnpaper{year},\n"
        f"  author  = {{{authors}}},\n"
        f"  title   = {{{cff['title']}}},\n"
        f"  version = {{{cff['version']}}},\n"
        f"  year    = {{{year}}},\n"
        f"  license = {{{' and '.join(cff['license'])}}},\n"
        "}"
    )


def bib_entry(key: str) -> str:
    """One entry of book/references.bib, as written there."""
    text = (REPO / "book" / "references.bib").read_text(encoding="utf-8")
    m = re.search(r"@\w+\{" + re.escape(key) + r",.*?\n\}", text, re.S)
    if m is None:
        raise UnknownNameError(f"no entry {key!r} in book/references.bib")
    return m.group(0)


def download_names(version: str, profile: str) -> dict:
    """Where the site offers the PDFs and the release archive (the deploy workflow copies them)."""
    return {
        "pdf_en": "downloads/bnpaper-en.pdf",
        "pdf_ar": "downloads/bnpaper-ar.pdf",
        "release": f"downloads/bnpaper-{version}-{profile}.tar.gz",
    }


def _downloads_html(dl: dict, have: set[str], profile: str) -> str:
    """The download links for the files that exist; for the others, the command that makes them
    (after `make book` alone there are no PDFs yet: no dead links)."""
    pdfs = [
        f'<a href="{dl["pdf_en"]}">PDF, English edition</a>' if "pdf_en" in have else "",
        f'<a href="{dl["pdf_ar"]}" lang="ar" dir="rtl">PDF، الطبعة العربية</a>' if "pdf_ar" in have else "",
    ]
    pdfs = [x for x in pdfs if x]
    pdf_item = (
        " · ".join(pdfs)
        if pdfs
        else "PDFs of both editions: not built yet; <code>make pdf</code> prints them"
    )
    if "release" in have:
        rel = (
            f'<a href="{dl["release"]}">Release archive</a> ({html.escape(profile)} profile): both '
            "editions, both PDFs, the executed notebooks, the figure data, the claims ledger, with "
            "<code>SHA256SUMS</code> (<code>bnpaper release --verify ARCHIVE</code>)"
        )
    else:
        rel = (
            "Release archive: not built yet; <code>make release</code> packs it (after <code>make pdf</code>)"
        )
    return f"    <li>{pdf_item}</li>\n    <li>{rel}</li>"


def available_downloads(html_dir: Path, version: str, profile: str) -> set[str]:
    """Which of the download names exist under the site folder."""
    return {k for k, rel in download_names(version, profile).items() if (Path(html_dir) / rel).is_file()}


def language_chooser(
    editions: dict, langs: list[str], profile: str = "quick", have: set[str] | None = None
) -> str:
    """The site's front page: the editions, the downloads that exist, how to cite, how to re-execute."""
    from importlib.metadata import version

    links = "\n".join(
        f'    <li><a href="{lang}/index.html" hreflang="{lang}" lang="{lang}" '
        f'dir="{"rtl" if lang == "ar" else "ltr"}">'
        f"{html.escape(editions[lang]['title'])} ({html.escape(editions[lang]['label'])})</a></li>"
        for lang in langs
    )
    dl = download_names(version("bnpaper"), profile)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Batch Normalization, reproduced · إعادة إنتاج تطبيع الحزمة</title>
  <style>
    body {{ {_BODY_CSS} }}
    li {{ font-size: 1.3rem; margin: 0.6rem 0; }}
    pre {{ background: #f5f5f5; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }}
    h2 {{ margin-top: 2rem; }}
  </style>
</head>
<body>
  <h1>Batch Normalization, reproduced</h1>
  <p>A companion to Ioffe &amp; Szegedy (2015). Choose an edition ·
    <span lang="ar" dir="rtl">اختر الطبعة</span>:</p>
  <ul>
{links}
  </ul>
  <h2 id="downloads">Downloads</h2>
  <ul>
{_downloads_html(dl, have or set(), profile)}
  </ul>
  <h2 id="cite">Cite</h2>
  <p>The book:</p>
  <pre id="bibtex-book">{html.escape(book_bibtex())}</pre>
  <p>The paper it reproduces:</p>
  <pre id="bibtex-paper">{html.escape(bib_entry("ioffe2015batch"))}</pre>
  <h2 id="re-execute">Re-execute</h2>
  <pre>make book                                   # every chapter, both editions (quick profile)
.venv/bin/bnpaper execute 07 -p seeds 20    # one chapter with your own parameters
make pdf &amp;&amp; make release                    # the PDFs and the archive</pre>
</body>
</html>
"""


def refresh_landing(build_dir: Path, profile: str, also: tuple[str, ...] = ()) -> Path:
    """Rewrite html/index.html of a build with the downloads that exist now (after `bnpaper pdf` put
    the PDFs in html/downloads/), plus `also` (`bnpaper release` names the archive it is about to
    write, so that two releases of one build pack the same front page)."""
    from importlib.metadata import version

    site = Path(build_dir) / "html"
    editions = yaml.safe_load((REPO / "book" / "editions.yml").read_text(encoding="utf-8"))
    langs = [lang for lang in editions if (site / lang / "index.html").is_file()]
    have = available_downloads(site, version("bnpaper"), profile) | set(also)
    path = site / "index.html"
    path.write_text(language_chooser(editions, langs, profile, have), encoding="utf-8")
    return path
