"""Pages the pipeline generates for each edition: glossary, reproducibility, references, the
language chooser, and the download link inserted under each chapter's title."""

from __future__ import annotations

import html
import json
import re

import nbformat

from bnpaper.claims_view import md_cell as _cell
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


# The landing page's `body` rule: one line of CSS on the page, split here only to keep lines short.
_BODY_CSS = (
    'font-family: system-ui, sans-serif, "Noto Sans Arabic"; '
    "max-width: 40rem; margin: 4rem auto; line-height: 1.6;"
)


def language_chooser(editions: dict, langs: list[str]) -> str:
    links = "\n".join(
        f'    <li><a href="{lang}/index.html" hreflang="{lang}" lang="{lang}" '
        f'dir="{"rtl" if lang == "ar" else "ltr"}">'
        f"{html.escape(editions[lang]['title'])} ({html.escape(editions[lang]['label'])})</a></li>"
        for lang in langs
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Batch Normalization, reproduced · إعادة إنتاج تطبيع الحزمة</title>
  <style>
    body {{ {_BODY_CSS} }}
    li {{ font-size: 1.3rem; margin: 0.6rem 0; }}
  </style>
</head>
<body>
  <h1>Batch Normalization, reproduced</h1>
  <p>A companion to Ioffe &amp; Szegedy (2015). Choose an edition · اختر النسخة:</p>
  <ul>
{links}
  </ul>
</body>
</html>
"""
