"""Chapter sources: one bilingual jupytext (MyST) notebook per chapter in notebooks/.

Conventions of a chapter source (see notebooks/README.md):

* the first code cell is tagged `parameters` and assigns literals: profile, device, seed, lang
  and the chapter's own knobs;
* each prose cell is a markdown cell marked with its language, `+++ {"lang": "en"}` followed by
  its twin `+++ {"lang": "ar"}`;
* cells without a language (code, and markdown that holds only equations or directives) are
  shared by both editions, so code, equations and figures are identical by construction;
* a code cell that draws a figure may carry `:name:`, `:caption_en:` and `:caption_ar:`.

`split(notebook, lang)` makes the one-language notebook that papermill executes.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat

from bnpaper.device import DEVICES
from bnpaper.errors import BnpaperError
from bnpaper.glossary import LANGS

PROFILES = ("smoke", "quick", "paper")
COMMON = {"profile": PROFILES, "device": DEVICES, "lang": LANGS}  # parameters with fixed choices
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SHA_KEY = "en_sha"  # an Arabic prose cell's record of its English twin's hash (bnpaper.i18n)
CAPTION_SHA_KEY = "caption_ar_sha"  # the same for a figure's Arabic caption


class ChapterError(BnpaperError, ValueError):
    """A chapter or parameter problem, stated in one paragraph."""


@dataclass
class Chapter:
    name: str  # file stem, e.g. "01_bn_transform"; the page name in both editions
    path: Path
    notebook: nbformat.NotebookNode
    titles: dict[str, str]
    params: dict[str, Any]  # defaults from the parameters cell
    limits: dict[str, dict]  # per-parameter {"min": .., "max": .., "choices": [..]} from front matter
    source_text: str = ""  # the source as read (keys executions, so a later edit cannot mismatch)
    reads_ledger: bool = False  # front matter bnpaper.reads_ledger: re-execute when any claim record changes


def read_chapter(path: Path) -> Chapter:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        nb = jupytext.reads(text, fmt="myst")
    except Exception as e:  # noqa: BLE001
        raise ChapterError(f"cannot read chapter source {path}: {e}") from e
    meta = nb.metadata.get("bnpaper", {})
    titles = meta.get("title", {})
    if set(titles) != set(LANGS):
        raise ChapterError(
            f"{path.name}: front matter bnpaper.title needs one title per language {LANGS}, "
            f"got {sorted(titles)}"
        )
    cells = [c for c in nb.cells if c.cell_type == "code"]
    if not cells or "parameters" not in cells[0].metadata.get("tags", []):
        raise ChapterError(f"{path.name}: the first code cell must be tagged `parameters`")
    params = parse_parameters(cells[0].source, path.name)
    for name in ("profile", "device", "lang"):
        if name not in params:
            raise ChapterError(f"{path.name}: the parameters cell must assign `{name}`")
    return Chapter(
        path.stem, path, nb, titles, params, meta.get("params", {}), text, bool(meta.get("reads_ledger"))
    )


def parse_parameters(source: str, where: str = "parameters cell") -> dict[str, Any]:
    """name -> default for every `name = literal` line of a parameters cell."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError as e:
                raise ChapterError(f"{where}: parameter {node.targets[0].id} must be a literal ({e})") from e
    return out


def chapters(notebooks_dir: Path = NOTEBOOKS) -> dict[str, Chapter]:
    """Every chapter, by name, in file-name order."""
    paths = sorted(p for p in Path(notebooks_dir).glob("*.md") if p.name[:2].isdigit())
    return {p.stem: read_chapter(p) for p in paths}


def find_chapter(name: str, notebooks_dir: Path = NOTEBOOKS) -> Chapter:
    """A chapter by its name or its number prefix ("01" or "01_bn_transform")."""
    all_ = chapters(notebooks_dir)
    matches = [c for n, c in all_.items() if n == name or n.split("_")[0] == name or n.endswith(name)]
    if len(matches) != 1:
        raise ChapterError(f"unknown chapter {name!r}; choose one of: {', '.join(all_)}")
    return matches[0]


def _type_name(v: Any) -> str:
    return {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        list: "list",
        tuple: "list",
        dict: "dict",
    }.get(type(v), type(v).__name__)


def coerce(name: str, raw: Any, default: Any) -> Any:
    """A command-line string (or a value) converted to the default's type, or a clear error."""
    import yaml

    value = yaml.safe_load(raw) if isinstance(raw, str) and not isinstance(default, str) else raw
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default)) or default is None
    if not ok:
        raise ChapterError(
            f"parameter {name!r} expects a {_type_name(default)} (default {default!r}), got {raw!r}"
        )
    return value


def validate_params(ch: Chapter, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults updated by overrides; every name, type, choice and range checked before running."""
    unknown = sorted(set(overrides) - set(ch.params))
    if unknown:
        raise ChapterError(
            f"chapter {ch.name}: unknown parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(f'{k} (default {v!r})' for k, v in ch.params.items())}"
        )
    out = dict(ch.params)
    for name, raw in overrides.items():
        out[name] = coerce(name, raw, ch.params[name])
    for name, value in out.items():
        lim = dict(ch.limits.get(name, {}))
        choices = COMMON.get(name) or lim.get("choices")
        if choices is not None and value not in choices:
            raise ChapterError(
                f"chapter {ch.name}: parameter {name!r} must be one of "
                f"{', '.join(map(str, choices))}; got {value!r}"
            )
        items = value if isinstance(value, list) else [value]
        for v in items:
            if "min" in lim and v < lim["min"] or "max" in lim and v > lim["max"]:
                raise ChapterError(
                    f"chapter {ch.name}: parameter {name!r} must be in "
                    f"[{lim.get('min', '-inf')}, {lim.get('max', 'inf')}], got {value!r}"
                )
    if out["device"] == "cuda":
        from bnpaper.device import resolve_device

        try:
            resolve_device("cuda")
        except RuntimeError as e:
            raise ChapterError(str(e)) from e
    return out


# ----------------------------------------------------------------------------- splitting


def cell_lang(cell) -> str | None:
    return cell.metadata.get("lang")


def split(ch: Chapter, lang: str) -> nbformat.NotebookNode:
    """The one-language notebook: the lang's prose, every shared cell, figure captions in lang."""
    if lang not in LANGS:
        raise ChapterError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    nb = copy.deepcopy(ch.notebook)
    cells = []
    for cell in nb.cells:
        lang_of = cell_lang(cell)
        if lang_of is not None and lang_of != lang:
            continue
        cell.metadata.pop("lang", None)
        cell.metadata.pop(SHA_KEY, None)  # bnpaper.i18n's record of the English twin
        cell.metadata.pop(CAPTION_SHA_KEY, None)
        if cell.cell_type == "code":
            _figure_metadata(cell, lang)
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("jupytext", None)
    nb.metadata["bnpaper"] = {"chapter": ch.name, "lang": lang, "title": ch.titles[lang]}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def _figure_metadata(cell, lang: str) -> None:
    captions = {k: cell.metadata.pop(f"caption_{k}") for k in LANGS if f"caption_{k}" in cell.metadata}
    name = cell.metadata.pop("name", None)
    if captions or name:
        fig = {}
        if name:
            fig["name"] = name
        if lang in captions:
            fig["caption"] = captions[lang]
        cell.metadata.setdefault("mystnb", {})["figure"] = fig


# ----------------------------------------------------------------------------- bilingual checks


_MATH_BLOCK = re.compile(r"\$\$.*?\$\$(?:\s*\([\w-]+\))?", re.DOTALL)
_REFS = re.compile(r"\{(?:eq|numref|ref|cite|cite:p|cite:t|term|download|doc)\}`[^`]*`")
_HEADING = re.compile(r"^(#+)\s", re.MULTILINE)
_DIRECTIVE = re.compile(r"^```\{[\w:-]+\}", re.MULTILINE)
_LABEL = re.compile(r"^\(([\w-]+)\)=\s*$", re.MULTILINE)


def prose_pairs(ch: Chapter) -> list[tuple[Any, Any]]:
    """(English cell, Arabic cell) pairs; raises if a prose cell lacks its twin right after it."""
    pairs, pending = [], None
    for i, cell in enumerate(ch.notebook.cells):
        lang = cell_lang(cell)
        if lang not in (None, "en", "ar"):
            raise ChapterError(f"{ch.name}, cell {i}: unknown lang {lang!r}")
        if lang == "en":
            if pending is not None:
                raise ChapterError(
                    f"{ch.name}, cell {i}: English cell follows an English cell with no Arabic twin between"
                )
            pending = (i, cell)
        elif lang == "ar":
            if pending is None:
                raise ChapterError(
                    f"{ch.name}, cell {i}: Arabic cell without an English cell right before it"
                )
            pairs.append((pending[1], cell))
            pending = None
        elif pending is not None:
            raise ChapterError(
                f"{ch.name}, cell {pending[0]}: English cell has no Arabic twin right after it"
            )
    if pending is not None:
        raise ChapterError(f"{ch.name}, cell {pending[0]}: English cell has no Arabic twin")
    return pairs


def structure(text: str) -> dict[str, list]:
    """What must be identical in both languages: equations, references, heading levels, directives."""
    return {
        "equations": _MATH_BLOCK.findall(text),
        "references": sorted(_REFS.findall(text)),
        "headings": _HEADING.findall(text),
        "directives": _DIRECTIVE.findall(text),
        "labels": _LABEL.findall(text),
    }
