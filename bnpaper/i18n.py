"""A translation that cannot go stale: each Arabic twin records a short hash of its English twin.

A chapter's Arabic prose cell records the hash of the English cell before it at the time it was
translated or reviewed, in its marker line (`+++ {"lang": "ar", "en_sha": "1a2b3c4d"}`); a figure's
Arabic caption records the hash of its English caption in the cell option `:caption_ar_sha:`.
When the English changes and the Arabic is not revisited, the recorded hash no longer matches:
the twin is *stale*. This is what gettext's fuzzy entries do for translated catalogues.

  bnpaper i18n status [CHAPTER ...]     list the stale (or unrecorded) twins, per chapter
  bnpaper i18n ok CHAPTER:N [...]       record twin N as reviewed (CHAPTER alone: all its twins;
                                        an experiment's catalog, e.g. conv or conv:3, likewise)

Twins are numbered 1, 2, ... in the order they appear in the chapter source (prose and captions
together); `status` prints each number with the first words of its English text.

The experiments' claims, protocols and conclusions live in text catalogs beside their modules
(bnpaper/experiments/<module>.yml, bnpaper.text); each entry records the same hash (`en_sha`), and
`status` and `ok` take a catalog's name (`conv`, `conv:3`) as they take a chapter's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bnpaper import text
from bnpaper.book.chapters import (
    CAPTION_SHA_KEY,
    NOTEBOOKS,
    SHA_KEY,
    Chapter,
    ChapterError,
    chapters,
    find_chapter,
    prose_pairs,
)
from bnpaper.counting import arabic_plural_category, counted  # noqa: E402,F401  (chapters call i18n.counted)
from bnpaper.text import text_hash

_AR_MARKER = re.compile(r'^\+\+\+ (\{"lang": "ar".*\})[ \t]*$', re.MULTILINE)
_CAPTION_AR = re.compile(r"^:caption_ar:.*$", re.MULTILINE)
_CAPTION_SHA = re.compile(r"^:caption_ar_sha:.*\n", re.MULTILINE)


@dataclass(frozen=True)
class Twin:
    chapter: str
    number: int  # 1-based, in source order
    kind: str  # "prose" or "caption"
    en: str
    ar: str
    recorded: str | None  # the hash the Arabic recorded, None if it never did
    key: str = ""  # a catalog entry's key

    @property
    def current(self) -> str:
        return text_hash(self.en)

    @property
    def stale(self) -> bool:
        return self.recorded != self.current

    @property
    def cell(self) -> str:
        return f"{self.chapter}:{self.number}"

    def describe(self) -> str:
        state = f"recorded {self.recorded}, English now {self.current}"
        if self.recorded is None:
            state = "never recorded"
        words = " ".join(self.en.split())[:70]
        kind = f"{self.kind} {self.key}" if self.key else self.kind
        return f"{self.cell} ({kind}, {state}): {words}"


def twins(ch: Chapter) -> list[Twin]:
    """Every (English, Arabic) twin of a chapter in source order: prose cells and figure captions."""
    prose = {id(ar): (en, ar) for en, ar in prose_pairs(ch)}
    out: list[Twin] = []
    for cell in ch.notebook.cells:
        if id(cell) in prose:
            en, ar = prose[id(cell)]
            kind, en_text, ar_text, rec = "prose", en.source, ar.source, ar.metadata.get(SHA_KEY)
        elif cell.cell_type == "code" and "caption_en" in cell.metadata:
            if "caption_ar" not in cell.metadata:
                raise ChapterError(f"{ch.name}: a figure has an English caption and no Arabic one")
            m = cell.metadata
            kind, en_text, ar_text, rec = "caption", m["caption_en"], m["caption_ar"], m.get(CAPTION_SHA_KEY)
        else:
            continue
        out.append(Twin(ch.name, len(out) + 1, kind, en_text, ar_text, None if rec is None else str(rec)))
    return out


def catalog_twins(module: str) -> list[Twin]:
    """Every entry of an experiment's text catalog (bnpaper/experiments/<module>.yml) as a twin,
    numbered in the catalog's order; `key` names the entry."""
    return [
        Twin(module, n, "catalog", e["en"], e["ar"], e.get(text.HASH_KEY), key)
        for n, (key, e) in enumerate(text.entries(module).items(), 1)
    ]


def status(names: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS) -> dict[str, list[Twin]]:
    """chapter or experiment catalog -> its stale twins (every chapter and catalog, or those named)."""
    chs = chapters(notebooks_dir)
    cats = text.catalogs()
    if names:
        unknown = [n for n in names if n not in chs and n not in cats]
        if unknown:
            raise ChapterError(
                f"unknown chapter(s) or catalog(s) {', '.join(unknown)}; known: {', '.join([*chs, *cats])}"
            )
        chs = {n: chs[n] for n in names if n in chs}
        cats = [n for n in cats if n in names]
    out = {name: [t for t in twins(ch) if t.stale] for name, ch in chs.items()}
    out.update({m: [t for t in catalog_twins(m) if t.stale] for m in cats})
    return out


def _parse_cell(spec: str) -> tuple[str, int | None]:
    name, _, num = spec.partition(":")
    if num and not num.isdigit():
        raise ChapterError(f"a twin is CHAPTER:N with N a number (see `bnpaper i18n status`), got {spec!r}")
    return name, int(num) if num else None


def mark_reviewed(specs: list[str], notebooks_dir: Path = NOTEBOOKS) -> list[Twin]:
    """Record the current English hash in the Arabic twins named by CHAPTER:N (or CHAPTER for all
    of them); rewrites only those marker lines and caption options of the sources. Returns the
    twins whose record changed."""
    by_chapter: dict[str, set[int] | None] = {}
    for spec in specs:
        name, num = _parse_cell(spec)
        if num is None:
            by_chapter[name] = None
        elif by_chapter.get(name, set()) is not None:
            by_chapter.setdefault(name, set()).add(num)
    changed: list[Twin] = []
    for name, nums in by_chapter.items():
        if name in text.catalogs():
            entries = catalog_twins(name)
            bad = sorted(n for n in nums or () if not 1 <= n <= len(entries))
            if bad:
                raise ChapterError(f"{name} has entries 1..{len(entries)}, got {', '.join(map(str, bad))}")
            keys = None if nums is None else [t.key for t in entries if t.number in nums]
            done = set(text.mark_reviewed(name, keys))
            changed += [t for t in entries if t.key in done]
            continue
        ch = find_chapter(name, notebooks_dir)
        all_twins = twins(ch)
        if nums is not None:
            bad = sorted(n for n in nums if not 1 <= n <= len(all_twins))
            if bad:
                raise ChapterError(f"{name} has twins 1..{len(all_twins)}, got {', '.join(map(str, bad))}")
        chosen = [t for t in all_twins if (nums is None or t.number in nums) and t.stale]
        if chosen:
            source = _record(ch.path.read_text(encoding="utf-8"), all_twins, chosen)
            ch.path.write_text(source, encoding="utf-8")
            changed += chosen
    return changed


def _record(text: str, all_twins: list[Twin], chosen: list[Twin]) -> str:
    """The source with the chosen twins' hashes written in (the k-th Arabic marker line is the k-th
    prose twin, the k-th `:caption_ar:` option the k-th caption twin)."""
    want = {(t.kind, sum(u.kind == t.kind for u in all_twins[: t.number])): t.current for t in chosen}
    markers = list(_AR_MARKER.finditer(text))
    captions = list(_CAPTION_AR.finditer(text))
    n_prose = sum(t.kind == "prose" for t in all_twins)
    n_caption = sum(t.kind == "caption" for t in all_twins)
    if len(markers) != n_prose or len(captions) != n_caption:
        raise ChapterError(
            f"expected {n_prose} Arabic marker lines and {n_caption} Arabic captions written one per line, "
            f"got {len(markers)} and {len(captions)}: record the hashes by hand"
        )
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied back to front
    for k, m in enumerate(markers, 1):
        if ("prose", k) in want:
            meta = json.loads(m.group(1))
            meta[SHA_KEY] = want[("prose", k)]
            edits.append((m.start(), m.end(), "+++ " + json.dumps(meta, ensure_ascii=False)))
    for k, m in enumerate(captions, 1):
        if ("caption", k) in want:
            end = m.end() + 1  # past the newline
            old = _CAPTION_SHA.match(text, end)
            stop = old.end() if old else end
            edits.append((end, stop, f':{CAPTION_SHA_KEY}: "{want[("caption", k)]}"\n'))
    for start, stop, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[stop:]
    return text
