"""Publishing (issue 15): a PDF of each edition printed by headless Chromium, checked with poppler's
tools, and a release archive that verifies and rebuilds byte for byte. Both from the smoke build."""

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from bnpaper.book import chromium, pdf, release

pytestmark = [pytest.mark.book]
POPPLER = all(shutil.which(t) for t in ("pdfinfo", "pdftotext", "pdffonts", "pdftohtml"))


@pytest.fixture(scope="module")
def smoke_pdfs(smoke_book):
    if chromium.executable() is None:
        pytest.skip(chromium.MISSING)
    build_dir = smoke_book.parent
    made = pdf.build_pdfs(build_dir)
    return build_dir, made


def _run(*cmd) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


needs_poppler = pytest.mark.skipif(not POPPLER, reason="poppler-utils is not installed (make system-deps)")


@needs_poppler
@pytest.mark.parametrize("lang", ["en", "ar"])
def test_pdf_has_pages_outline_and_embedded_fonts(smoke_pdfs, lang):
    build_dir, made = smoke_pdfs
    path = Path(made[lang]["path"])
    info = _run("pdfinfo", str(path))
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    assert pages >= 20 and re.search(r"^Tagged:\s+yes", info, re.M), info
    outline = _run("pdftohtml", "-xml", "-stdout", "-i", "-q", str(path))
    titles = re.findall(r"<item[^>]*>([^<]+)</item>", outline)
    chapters = yaml.safe_load((Path(pdf.BOOK) / "toc.yml").read_text(encoding="utf-8"))
    assert len(titles) >= 10, titles[:20]  # chapters and their sections
    fonts = _run("pdffonts", str(path)).splitlines()[2:]
    assert fonts and all(line.split()[-5] == "yes" for line in fonts), "\n".join(fonts)  # emb column
    assert chapters["root"] == "00_intro"


@needs_poppler
def test_arabic_pdf_text_is_arabic_in_logical_order_without_raw_tex(smoke_pdfs):
    from bnpaper.glossary import terms

    build_dir, made = smoke_pdfs
    text = _run("pdftotext", "-enc", "UTF-8", made["ar"]["path"], "-")
    found = [t.ar for t in terms() if t.ar in text]
    assert len(found) >= 10, found  # the glossary's terms, letters in reading order
    assert "تطبيع الحزمة" in text and "الطبعة العربية" in text  # the cover too
    for edition in (text, _run("pdftotext", "-enc", "UTF-8", made["en"]["path"], "-")):
        # unrendered math would print its TeX; the shown code cells may hold TeX in Python strings
        raw = [
            line for line in edition.splitlines() if ("\\frac" in line or "\\(" in line) and '"' not in line
        ]
        assert not raw and "$$" not in edition, raw[:5]
    assert "English edition" in _run("pdftotext", "-l", "1", made["en"]["path"], "-")


def test_cover_names_edition_revision_and_profile(smoke_pdfs):
    build_dir, _ = smoke_pdfs
    meta = pdf.build_meta(build_dir, "ar")
    html = pdf.cover_html("ar", meta)
    assert meta["profile"] == "smoke" and meta["git"] in html and "نمط التشغيل" in html


def test_a_character_no_font_has_is_caught(monkeypatch):
    assert pdf.uncovered("تطبيع الحزمة abc 0.5 ± ⁦-1⁩") == set()  # the installed fonts draw the book's text
    monkeypatch.setattr(pdf, "_font_coverage", lambda: frozenset(map(ord, "abc ")))
    assert pdf.uncovered("abc xب\n") == {"x", "ب"}  # whitespace and controls need no glyph


def test_pdf_without_a_book_names_the_fix(tmp_path):
    with pytest.raises(pdf.PdfError, match="make book"):
        pdf.build_pdfs(tmp_path)


def test_release_is_reproducible_and_verifies(smoke_pdfs, tmp_path):
    build_dir, _ = smoke_pdfs
    a = release.write(build_dir, tmp_path / "a")
    b = release.write(build_dir, tmp_path / "b")
    assert a.name == b.name and a.name.endswith("-smoke.tar.gz")
    assert a.read_bytes() == b.read_bytes()  # byte-identical from the same inputs
    n = release.verify(a)
    with tarfile.open(a) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    top = names[0].split("/")[0]
    assert names == sorted(names[:-1]) + [f"{top}/SHA256SUMS"]  # sorted, the sums last
    assert all(not m.name.startswith("/") and ".." not in m.name.split("/") for m in members)
    assert len({m.mtime for m in members}) == 1 and all(m.uid == 0 and m.uname == "" for m in members)
    for part in ("html/en/index.html", "html/ar/index.html", "pdf/bnpaper-ar.pdf", "CITATION.cff", "LICENSE"):
        assert f"{top}/{part}" in names, part
    assert any(n.startswith(f"{top}/executed/ar/") and n.endswith(".ipynb") for n in names)
    assert any(n.startswith(f"{top}/figdata/") and n.endswith(".json") for n in names)
    assert any(n.startswith(f"{top}/ledger/smoke/") for n in names)
    assert n == len(names) - 1
    # the sums are what `sha256sum -c` reads, run from inside the archive's folder
    out = tmp_path / "x"
    with tarfile.open(a) as tar:
        tar.extractall(out, filter="data")
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out / top, capture_output=True)
    assert check.returncode == 0, check.stdout[-500:]


def test_verify_names_a_changed_file(smoke_pdfs, tmp_path):
    import gzip
    import io

    build_dir, _ = smoke_pdfs
    good = release.write(build_dir, tmp_path)
    with tarfile.open(good) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for m, data in members:
            if m.name.endswith("CITATION.cff"):
                data = data.replace(b"bnpaper", b"bnpapers")
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(release.ReleaseError, match="changed: .*CITATION.cff"):
        release.verify(bad)
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(release.ReleaseError, match="not a readable"):
        release.verify(tmp_path / "junk.tar.gz")


def test_release_without_pdfs_names_the_fix(tmp_path):
    (tmp_path / "executed" / "en").mkdir(parents=True)
    (tmp_path / "executed" / "en" / "00_intro.run.json").write_text(
        json.dumps({"params": {"profile": "smoke"}})
    )
    with pytest.raises(release.ReleaseError, match="bnpaper pdf"):
        release.write(tmp_path, tmp_path / "out")


# ----------------------------------------------------------------------------- citing, the site, readers

ROOT = Path(__file__).resolve().parents[1]


def _bib_fields(entry: str) -> dict:
    return {k.lower(): v.strip("{}") for k, v in re.findall(r"^\s*(\w+)\s*=\s*(\{.*\}),?\s*$", entry, re.M)}


def test_citation_cff_and_bibtex_agree():
    from bnpaper.book import pages

    cff = pages.citation()
    book = _bib_fields(pages.book_bibtex())
    assert book["title"] == cff["title"] and book["version"] == str(cff["version"])
    assert book["year"] == str(cff["date-released"])[:4] and book["author"] == cff["authors"][0]["name"]
    paper, ref = _bib_fields(pages.bib_entry("ioffe2015batch")), cff["references"][0]
    assert paper["title"] == ref["title"] and paper["year"] == str(ref["year"])
    assert paper["volume"] == str(ref["volume"]) and paper["pages"] == f"{ref['start']}--{ref['end']}"
    assert [a.split(", ")[0] for a in paper["author"].split(" and ")] == [
        a["family-names"] for a in ref["authors"]
    ]
    assert ref["identifiers"][0]["value"].endswith(paper["eprint"])


def test_landing_page_offers_downloads_citations_and_commands(smoke_pdfs):
    from bnpaper.book import pages

    build_dir, _ = smoke_pdfs
    page = (build_dir / "html" / "index.html").read_text(encoding="utf-8")
    pdfs = re.findall(r'href="(downloads/[^"]+\.pdf)"', page)
    assert len(pdfs) == 2, "bnpaper pdf rewrote the front page with both PDFs"
    for target in pdfs:
        assert (build_dir / "html" / target).exists(), target  # the PDFs `bnpaper pdf` put there
    from importlib.metadata import version

    if not (build_dir / "html" / pages.download_names(version("bnpaper"), "smoke")["release"]).exists():
        assert "make release" in page and "-smoke.tar.gz" not in page  # no dead link: the command
    assert "@software{bnpaper" in page and "@inproceedings{ioffe2015batch" in page
    assert "make book" in page and "bnpaper execute" in page and "اختر الطبعة" in page
    assert pages.download_names("1.0", "quick")["release"] == "downloads/bnpaper-1.0-quick.tar.gz"


@pytest.mark.parametrize("lang,heading", [("en", "Cite this chapter"), ("ar", "استشهد بهذا الفصل")])
def test_every_chapter_page_says_how_to_cite_it(smoke_book, lang, heading):
    for page in sorted((smoke_book / lang).glob("[0-9][0-9]_*.html")):
        text = re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))  # the BibTeX is highlighted
        assert heading in text and "@incollection{bnpaper" in text, page.name
        assert f"-{page.stem}-{lang}," in text, page.name


def _workflow(name: str) -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def test_deploy_workflow_builds_pdfs_release_and_publishes_pages():
    wf = _workflow("book.yml")
    assert wf["on"]["push"]["branches"] == ["main"] and "workflow_dispatch" in wf["on"]
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    runs = "\n".join(s.get("run", "") for s in build["steps"])
    uses = [s.get("uses", "") for s in build["steps"]]
    for command in ("make system-deps", "make book PROFILE=quick", "make pdf", "make release", "--verify"):
        assert command in runs, command
    cache = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".bnpaper-cache" and "hashFiles(" in cache["with"]["key"]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert (
        next(s for s in build["steps"] if "upload-pages-artifact" in s.get("uses", ""))["with"]["path"]
        == "_build/html"
    )
    assert deploy["needs"] == "build" and deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert "download.pytorch.org/whl/cpu" in wf["env"]["PIP_EXTRA_INDEX_URL"]  # not the CUDA torch


def test_pull_requests_run_ci():
    wf = _workflow("ci.yml")
    assert "pull_request" in wf["on"]
    runs = "\n".join(s.get("run", "") for s in wf["jobs"]["test"]["steps"])
    assert "bash .ci/run" in runs


def test_a_reader_runs_a_chapter_source_with_papermill(tmp_path):
    """Outside `bnpaper book`: jupytext turns the bilingual source into a notebook, papermill runs it
    as it is with the smoke profile and the Arabic figures, in a folder of the reader's own."""
    import jupytext
    import papermill

    nb = jupytext.read(ROOT / "notebooks" / "01_bn_transform.md")
    jupytext.write(nb, tmp_path / "01_bn_transform.ipynb")
    out = tmp_path / "run.ipynb"
    papermill.execute_notebook(
        str(tmp_path / "01_bn_transform.ipynb"),
        str(out),
        parameters={"profile": "smoke", "lang": "ar"},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    ran = json.loads(out.read_text(encoding="utf-8"))
    errors = [o for c in ran["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in ran["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # the figures, drawn in the Arabic edition's language


def test_source_date_reads_the_commit_of_a_dirty_or_unknown_revision(tmp_path, monkeypatch):
    """A build from a checkout with edits records "abc+uncommitted changes": its archive is dated at
    commit abc, not 1970; "unknown (not a git checkout)" falls back to HEAD."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    )
    head = head.stdout.strip()
    when = subprocess.run(
        ["git", "log", "-1", "--format=%ct", head], capture_output=True, text=True, check=True
    )
    for rev in (f"{head}+uncommitted changes", "unknown (not a git checkout)"):
        folder = tmp_path / rev[:6] / "executed" / "en"
        folder.mkdir(parents=True)
        (folder / "01.run.json").write_text(json.dumps({"git": rev}))
        assert release.source_date(tmp_path / rev[:6]) == int(when.stdout), rev


def test_the_front_page_links_only_what_exists(tmp_path):
    """After `make book` alone there are no PDFs: the page names the commands, not dead links."""
    from bnpaper.book import pages

    editions = yaml.safe_load((pages.REPO / "book" / "editions.yml").read_text(encoding="utf-8"))
    bare = pages.language_chooser(editions, ["en", "ar"], "quick")
    assert "downloads/" not in bare and "make pdf" in bare and "make release" in bare
    full = pages.language_chooser(editions, ["en", "ar"], "quick", {"pdf_en", "pdf_ar", "release"})
    assert full.count('href="downloads/') == 3 and "make pdf</code> prints" not in full
