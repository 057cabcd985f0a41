"""The book pipeline: split (jupytext) -> execute (papermill) -> render (Jupyter Book 1), per edition.

    bnpaper book [--profile quick] [--device auto] [--lang en,ar]

Folders under the build dir (default _build/):

    executed/<lang>/<chapter>.ipynb   executed notebooks, + <chapter>.run.json (provenance)
    executed/<lang>/failed/           the notebook of a chapter whose cell raised, for reading
    src/<lang>/                       each edition's generated Jupyter Book source
    stage/<lang>/                     Jupyter Book's output (incremental between builds)
    html/{en,ar}/, html/index.html    the published book, replaced only when every edition built

A chapter is re-executed only when its source, its parameters, or the bnpaper package changed;
experiments inside a chapter are cached on disk too (bnpaper.cache), so the Arabic edition
reuses what the English one trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
import yaml

from bnpaper import cpus
from bnpaper import progress as progress_mod
from bnpaper.book import pages
from bnpaper.book.chapters import (
    NOTEBOOKS,
    REPO,
    Chapter,
    ChapterError,
    chapters,
    find_chapter,
    split,
    validate_params,
)
from bnpaper.cache import imported_modules, modules_hash, source_hash, write_json_atomic
from bnpaper.glossary import LANGS

BOOK = REPO / "book"
# Sphinx warnings that mean a reader would see a hole (a number, figure or reference missing):
BROKEN = (
    "Failed to format",
    "undefined label",
    "Duplicate explicit target",
    "glue",
    "unknown document",
    "citation not found",
    "could not find bibtex key",
    "equation not found",
    "image file not readable",
)
PACKAGES = ("torch", "numpy", "matplotlib", "papermill", "jupytext", "jupyter-book", "mlxtend")


def log(msg: str) -> None:
    print(f"[bnpaper] {msg}", flush=True)


# ----------------------------------------------------------------------------- provenance


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return rev + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def chapter_modules(ch: Chapter) -> tuple[str, ...]:
    """The bnpaper modules a chapter's code cells import."""
    code = "\n".join(c.source for c in ch.notebook.cells if c.cell_type == "code")
    return tuple(sorted(imported_modules(code)))


def _recorded_inputs(ch: Chapter) -> str:
    """A hash of the recorded files a chapter reads (the benchmark run chapter 01 shows): a new
    `bnpaper bench --record` re-executes it."""
    if "load_recorded" not in ch.source_text:
        return ""
    h = hashlib.sha256()
    for p in sorted((BOOK / "bench").glob("*.json")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def _run_key(ch: Chapter, lang: str, params: dict, ledger_dir: Path) -> str:
    """What an executed notebook depends on: its source, language, parameters, the source of the
    bnpaper modules its code cells import (followed transitively: editing the book pipeline or the
    ledger re-executes no chapter that does not import it), and, for a chapter that reads the claims
    ledger, every ledger record of its profile."""
    from bnpaper import ledger

    ledger_state = (
        ledger.records_hash(params["profile"], params.get("data_dir", ""), ledger_dir)
        if ch.reads_ledger
        else ""
    )
    blob = json.dumps(
        {
            "src": ch.source_text,
            "lang": lang,
            "params": params,
            "bnpaper": modules_hash(chapter_modules(ch)),
            "recorded": _recorded_inputs(ch),
            "ledger": ledger_state,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ----------------------------------------------------------------------------- execute


def with_values(source: str, params: dict) -> str:
    """A parameters cell's source with each `name = value  # comment` line set to this build's value
    of `name` (comments kept; names not in params and other lines unchanged)."""
    out = []
    for line in source.splitlines():
        m = re.match(r"^(?P<name>\w+)(?P<eq>\s*=\s*)[^#]*?(?P<comment>\s*#.*)?$", line)
        if m and m["name"] in params:
            v = params[m["name"]]
            value = json.dumps(v) if isinstance(v, str) else repr(v)
            line = f"{m['name']}{m['eq']}{value}{m['comment'] or ''}"
        out.append(line)
    return "\n".join(out)


def execute(
    ch: Chapter,
    lang: str,
    params: dict[str, Any],
    build_dir: Path,
    *,
    output: Path | None = None,
    force: bool = False,
    progress: bool = True,
    ledger_dir: Path | None = None,
) -> Path:
    """Execute one edition of one chapter with papermill; returns the executed notebook's path.

    params must already be validated (validate_params). A cell that raises stops here with a
    ChapterError naming the chapter, the cell and the error; nothing half-executed is left where
    the book build would pick it up.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from bnpaper.device import resolve_device

    params = {**params, "lang": lang}
    out_dir = Path(build_dir).resolve() / "executed" / lang
    out = Path(output).resolve() if output else out_dir / f"{ch.name}.ipynb"
    record_path = out.with_suffix(".run.json")
    ledger_dir = Path(ledger_dir or Path(build_dir) / "ledger").resolve()
    key = _run_key(ch, lang, params, ledger_dir)
    if not force and out.exists() and record_path.exists():
        try:
            if json.loads(record_path.read_text())["key"] == key:
                shown = out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out
                log(f"{lang} {ch.name}: unchanged, reusing {shown}")
                return out
        except (json.JSONDecodeError, KeyError):
            pass
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / ".work"
    work.mkdir(exist_ok=True)
    src_nb, tmp_out = work / f"{ch.name}.input.ipynb", work / f"{ch.name}.ipynb"
    nbformat.write(split(ch, lang), src_nb)
    env = {
        "BNPAPER_CACHE": str(Path(os.environ.get("BNPAPER_CACHE", REPO / ".bnpaper-cache")).resolve()),
        # bars go to this command's terminal, by path, so that the kernel and its worker processes
        # draw there and not into the page (ipykernel captures their stderr): bnpaper.progress
        "BNPAPER_PROGRESS": progress_mod.terminal() if progress else "0",
        "BNPAPER_CHAPTER": ch.name,
        "BNPAPER_FIGDATA": str(Path(build_dir).resolve() / "figdata" / lang),
        "BNPAPER_LEDGER": str(ledger_dir),
        # the kernel's own torch threads: the CPUs free now, so that evaluation and estimation in the
        # chapter's process do not fight other work for the cores (training sizes its workers itself)
        "OMP_NUM_THREADS": str(cpus.free_cpus()),
    }
    env_before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    log(f"{lang} {ch.name}: executing (profile {params['profile']}, device {params['device']})")
    t0 = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        papermill.execute_notebook(
            str(src_nb),
            str(tmp_out),
            parameters=params,
            kernel_name="python3",
            progress_bar=progress,
            cwd=str(REPO),
            language="python",
        )
    except PapermillExecutionError as e:
        failed = out.parent / "failed" / f"{ch.name}.ipynb"
        failed.parent.mkdir(exist_ok=True)
        if tmp_out.exists():
            shutil.move(tmp_out, failed)
        first_line = (e.source or "").strip().splitlines()[:1]
        code = [c.source for c in ch.notebook.cells if c.cell_type == "code"]
        where = (
            f"code cell {code.index(e.source) + 1} of {ch.path.name}"
            if e.source in code
            else f"cell {e.cell_index}"
        )
        raise ChapterError(
            f"chapter {ch.name} ({lang}) failed in {where} "
            f"(`{first_line[0] if first_line else ''}`): {e.ename}: {e.evalue}. "
            f"The partly executed notebook is {failed}; no edition was published."
        ) from None
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    nb = nbformat.read(tmp_out, as_version=4)
    nb.metadata.setdefault("mystnb", {})["execution_mode"] = "off"  # rendered as executed
    for cell in nb.cells:  # papermill's injected cell repeats the parameters cell with this build's
        tags = cell.metadata.get("tags", [])  # values: hidden (no empty toggle), and the parameters
        if "injected-parameters" in tags:  # cell a reader sees shows those values (the Arabic page's
            cell.metadata["tags"] = [*tags, "remove-cell"]  # says lang = "ar", not the source's "en")
        elif "parameters" in tags:
            cell.source = with_values(cell.source, params)
    separate_figure_outputs(nb)
    nbformat.write(nb, tmp_out)
    os.replace(tmp_out, out)  # the executed notebook appears whole or not at all
    record = {
        "chapter": ch.name,
        "lang": lang,
        "key": key,
        "params": params,
        "device_resolved": str(resolve_device(params["device"])),
        "seeds": {k: v for k, v in params.items() if "seed" in k},
        "versions": versions(),
        "git": git_revision(),
        "bnpaper_source": source_hash(),
        "started": started,
        "seconds": round(seconds, 2),
        "platform": platform.platform(),
    }
    write_json_atomic(record_path, record)
    log(f"{lang} {ch.name}: done in {seconds:.1f} s")
    return out


def separate_figure_outputs(nb: nbformat.NotebookNode) -> None:
    """A figure cell (mystnb.figure metadata) may also glue numbers or print; myst-nb would wrap every
    output in the named figure (duplicate labels). Keep the images in the figure cell and move the
    other outputs to an input-less cell right after it."""
    i = 0
    while i < len(nb.cells):
        cell = nb.cells[i]
        if cell.cell_type == "code" and cell.metadata.get("mystnb", {}).get("figure"):
            images = [o for o in cell.outputs if any(k.startswith("image/") for k in o.get("data", {}))]
            others = [o for o in cell.outputs if o not in images]
            if others and images:
                cell.outputs = images
                extra = nbformat.v4.new_code_cell(source="", metadata={"tags": ["remove-input"]})
                extra.outputs = others
                nb.cells.insert(i + 1, extra)
        i += 1


def execute_one(
    name: str,
    *,
    lang: str = "en",
    raw_params: list[tuple[str, str]] = (),
    output: Path | None = None,
    build_dir: Path = Path("_build"),
) -> Path:
    """`bnpaper execute CHAPTER --lang ar -p name value`: always re-executes."""
    ch = find_chapter(name)
    overrides = dict(raw_params)
    if "lang" in overrides:
        raise ChapterError("set the language with --lang, not -p lang")
    if lang not in LANGS:
        raise ChapterError(f"--lang must be one of {', '.join(LANGS)}, got {lang!r}")
    params = validate_params(ch, overrides)
    # the data and the profile's frozen tunings, before the kernel starts
    check_inputs(params.get("data_dir", ""), params.get("profile", "quick"))
    custom = Path(build_dir) / "executed" / "custom"
    out = output or custom / lang / f"{ch.name}.ipynb"
    # a one-off run records its claims apart from the book's ledger, so the book stays consistent
    return execute(ch, lang, params, build_dir, output=out, force=True, ledger_dir=custom / "ledger")


def check_inputs(data_dir: str, profile: str) -> None:
    """Before any chapter starts: the data load (a missing or bad data_dir names the file and the
    fix), and every tuned value the profile reads is frozen, for the profile's run lengths."""
    from bnpaper import data, tuning

    try:
        data.check(data_dir)
    except data.DataError as e:
        raise ChapterError(f"data_dir: {e}") from e
    missing = tuning.missing(profile)
    if missing:
        fp = tuning.frozen_profile(profile)
        raise ChapterError(
            f"no frozen tuning, or a stale one, for {', '.join(missing)} in {tuning.frozen_path(fp)}: run "
            f"`bnpaper tune --profile {fp} --only {' '.join(missing)}`"
            + (" (or `make paper`, which re-tunes every arm before it builds)" if fp == "paper" else "")
        )


def describe_chapters() -> str:
    lines = ["chapters (bnpaper execute CHAPTER -p name value):"]
    for name, ch in chapters().items():
        lines.append(f"  {name}: {ch.titles['en']}")
        lines.append("      " + ", ".join(f"{k}={v!r}" for k, v in ch.params.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- assemble + render


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _toc(lang: str, toc: dict) -> dict:
    return {
        "format": "jb-book",
        "root": toc["root"],
        "parts": [
            {
                "caption": p["caption"][lang],
                "numbered": False,
                "chapters": [{"file": c} for c in p["chapters"]],
            }
            for p in toc["parts"]
        ],
    }


def _config(lang: str, editions: dict) -> dict:
    cfg = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    cfg["title"] = editions[lang]["title"]
    for key, value in (editions[lang].get("book_config") or {}).items():  # author, footer, ...
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    sphinx_cfg = cfg.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_cfg["language"] = lang
    sphinx_cfg["bnpaper_editions"] = {o: editions[o]["label"] for o in editions if o != lang}
    sphinx_cfg.update(editions[lang].get("sphinx_config") or {})
    return cfg


def assemble(lang: str, executed: dict[str, Path], build_dir: Path) -> Path:
    """Write the edition's Jupyter Book source under build_dir/src/<lang>; returns the folder."""
    editions = yaml.safe_load((BOOK / "editions.yml").read_text(encoding="utf-8"))
    toc = yaml.safe_load((BOOK / "toc.yml").read_text(encoding="utf-8"))
    listed = {toc["root"], *(c for p in toc["parts"] for c in p["chapters"])}
    missing = sorted(set(executed) - listed)
    if missing:
        raise ChapterError(f"book/toc.yml does not list chapter(s) {', '.join(missing)}: add them to a part")
    src = Path(build_dir) / "src" / lang
    (src / "_static").mkdir(parents=True, exist_ok=True)
    _write_if_changed(
        src / "_config.yml",
        yaml.safe_dump(_config(lang, editions), allow_unicode=True, sort_keys=False).encode(),
    )
    _write_if_changed(
        src / "_toc.yml", yaml.safe_dump(_toc(lang, toc), allow_unicode=True, sort_keys=False).encode()
    )
    _write_if_changed(src / "references.bib", (BOOK / "references.bib").read_bytes())
    for f in (BOOK / "_static").iterdir():
        _write_if_changed(src / "_static" / f.name, f.read_bytes())
    strings = editions[lang]
    for name, path in executed.items():
        nb = nbformat.read(path, as_version=4)
        pages.add_download_link(nb, f"{name}.ipynb", strings["download"])
        if name[:2].isdigit():
            pages.add_citation(nb, name, lang, strings)
        _write_if_changed(src / f"{name}.ipynb", nbformat.writes(nb).encode())
    records = {n: json.loads(p.with_suffix(".run.json").read_text()) for n, p in executed.items()}
    figdata = Path(build_dir) / "figdata" / lang
    data_files = {}
    for f in sorted(figdata.glob("*.json")) if figdata.exists() else []:
        _write_if_changed(src / "data" / f.name, f.read_bytes())
        data_files.setdefault(f.name.split("-", 1)[0], []).append(f.name)
    _write_if_changed(src / "glossary.md", pages.glossary_page(lang, strings).encode())
    _write_if_changed(
        src / "reproducibility.md", pages.reproducibility_page(lang, strings, records, data_files).encode()
    )
    _write_if_changed(src / "references.md", pages.references_page(strings).encode())
    return src


def render(lang: str, src: Path, build_dir: Path) -> Path:
    """Run Jupyter Book 1 on an edition's source; returns its HTML folder (in stage/)."""
    stage = Path(build_dir) / "stage" / lang
    stamp = stage / "static.sha"
    static_hash = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted((src / "_static").iterdir()))
        + (src / "_config.yml").read_bytes()
    ).hexdigest()
    full = (
        not stamp.exists() or stamp.read_text() != static_hash
    )  # Sphinx does not re-copy changed _static files
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(src),
        "--path-output",
        str(stage),
        "--builder",
        "html",
    ]
    if full:
        cmd.append("--all")
    log(f"{lang}: rendering with Jupyter Book{' (full)' if full else ''}")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ChapterError(
            f"Jupyter Book failed to build the {lang} edition (exit {proc.returncode}); "
            f"no edition was published:\n{tail}"
        )
    warnings = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line]
    broken = [w for w in warnings if any(s in w for s in BROKEN)]
    if broken:
        shutil.rmtree(stage, ignore_errors=True)  # the next build re-reads every page and sees these again
        raise ChapterError(
            f"the {lang} edition built, but with {len(broken)} broken reference(s) or number(s); "
            "no edition was published:\n" + "\n".join(broken[:15])
        )
    stamp.write_text(static_hash)
    for w in warnings[:20]:
        log(f"{lang}: sphinx {w}")
    return stage / "_build" / "html"


def publish(built: dict[str, Path], build_dir: Path, profile: str = "quick") -> Path:
    """Swap the new editions in together: html/ is replaced only after every edition built."""
    final = Path(build_dir) / "html"
    new = Path(build_dir) / "html.new"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    for lang, html in built.items():
        shutil.copytree(html, new / lang)
    editions = yaml.safe_load((BOOK / "editions.yml").read_text(encoding="utf-8"))
    # a new build has no PDFs or archive of its own yet: the page names the commands that make them
    (new / "index.html").write_text(pages.language_chooser(editions, list(built), profile), encoding="utf-8")
    old = Path(build_dir) / "html.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def parse_langs(langs: str | list[str]) -> list[str]:
    out = [lang.strip() for lang in (langs.split(",") if isinstance(langs, str) else langs) if lang.strip()]
    bad = [lang for lang in out if lang not in LANGS]
    if bad or not out:
        raise ChapterError(f"--lang takes a comma-separated list of {', '.join(LANGS)}; got {langs!r}")
    return out


def execution_order(chs: dict) -> dict:
    """Chapters in file-name order, except that a chapter reading the claims ledger (front matter
    `reads_ledger`) runs after every chapter that records in it, whatever its number."""
    return dict(sorted(chs.items(), key=lambda item: item[1].reads_ledger))


def build_book(
    profile: str = "quick",
    device: str = "auto",
    langs: str | list[str] = "en,ar",
    build_dir: Path = Path("_build"),
    data_dir: str = "",
    progress: bool = True,
    notebooks_dir: Path = NOTEBOOKS,
) -> Path:
    """Execute every chapter in every edition, render each edition, publish them together."""
    t0 = time.perf_counter()
    build_dir = Path(build_dir).resolve()
    lang_list = parse_langs(langs)
    chs = chapters(notebooks_dir)
    if not chs:
        raise ChapterError(f"no chapter sources found in {notebooks_dir}")
    chs = execution_order(chs)
    # validate every chapter's parameters before anything runs
    plans = {}
    for name, ch in chs.items():
        overrides = {"profile": profile, "device": device}
        if data_dir and "data_dir" in ch.params:
            overrides["data_dir"] = data_dir
        plans[name] = validate_params(ch, overrides)
    check_inputs(data_dir, profile)
    built = {}
    for lang in lang_list:
        executed = {}
        for i, (name, ch) in enumerate(chs.items(), 1):
            log(f"[{lang} {i}/{len(chs)}] {name}")
            executed[name] = execute(ch, lang, plans[name], build_dir, progress=progress)
        src = assemble(lang, executed, build_dir)
        built[lang] = render(lang, src, build_dir)
    final = publish(built, build_dir, profile)
    log(f"book built in {time.perf_counter() - t0:.1f} s: {final / 'index.html'}")
    return final
