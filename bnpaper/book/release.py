"""A release archive of a built book that anyone can verify, and that rebuilds byte for byte.

`bnpaper release` packs, under one folder `bnpaper-<version>-<profile>/`:

* html/: both editions and the language chooser; pdf/: both PDFs (`bnpaper pdf`);
* executed/: every executed notebook with its run record (parameters, versions, git revision);
* figdata/: the data behind the figures (JSON); ledger/: the claims ledger's records;
* CITATION.cff and the licenses;
* SHA256SUMS: the SHA-256 of every other file, as `sha256sum -c` reads it.

Reproducible: entries sorted by name, every mtime the commit time of the build's git revision
(SOURCE_DATE_EPOCH overrides), owner 0/0 without names, modes 644, gzip without a name or a time.
Packing the same build twice gives the same bytes. `bnpaper release --verify ARCHIVE` recomputes
every sum and names any file that is missing, extra or changed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from bnpaper.errors import BnpaperError

ROOT = Path(__file__).resolve().parents[2]
TOP_FILES = ("CITATION.cff", "LICENSE", "LICENSE-TEXT.md")
SUMS = "SHA256SUMS"
DOWNLOADS = "html/downloads/"  # where the site offers the PDFs and archives: not packed again


class ReleaseError(BnpaperError, RuntimeError):
    """The build is incomplete for a release, or an archive does not verify."""


def build_profile(build_dir: Path) -> str:
    """The profile every executed chapter ran in (one profile per release, or an error)."""
    records = sorted(Path(build_dir, "executed").glob("*/*.run.json"))
    if not records:
        raise ReleaseError(f"no executed chapters under {build_dir}/executed: run `make book` first")
    found = {json.loads(p.read_text(encoding="utf-8"))["params"]["profile"] for p in records}
    if len(found) != 1:
        raise ReleaseError(f"the executed chapters mix profiles {sorted(found)}: rebuild with one profile")
    return found.pop()


def source_date(build_dir: Path) -> int:
    """The archive's one timestamp: SOURCE_DATE_EPOCH, else the commit time of the build's revision."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    revs = {
        json.loads(p.read_text(encoding="utf-8")).get("git", "")
        for p in Path(build_dir, "executed").glob("*/*.run.json")
    }
    # "abc123+uncommitted changes" is commit abc123 with edits; "unknown (not a git checkout)" is none
    rev = sorted({r.split("+")[0].strip() for r in revs if r and not r.startswith("unknown")})[:1]
    try:
        out = subprocess.run(
            ["git", "log", "-1", "--format=%ct", *(rev or ["HEAD"])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def collect(build_dir: Path, root: Path = ROOT, profile: str | None = None) -> dict[str, Path]:
    """arcname -> file, for every file the release holds (SHA256SUMS excepted)."""
    build_dir = Path(build_dir)
    profile = profile or build_profile(build_dir)
    missing = [
        p
        for p in ("html/en/index.html", "html/ar/index.html", "html/index.html")
        if not (build_dir / p).exists()
    ]
    missing += [
        f"pdf/bnpaper-{lang}.pdf"
        for lang in ("en", "ar")
        if not (build_dir / "pdf" / f"bnpaper-{lang}.pdf").exists()
    ]
    if missing:
        raise ReleaseError(
            f"the build in {build_dir} lacks {', '.join(missing)}: run `make book` and `bnpaper pdf` first"
        )
    files: dict[str, Path] = {}
    for sub in ("html", "pdf", "executed", "figdata", f"ledger/{profile}"):
        base = build_dir / sub
        for p in sorted(base.rglob("*")):
            name = p.relative_to(build_dir).as_posix()
            if p.is_file() and not p.is_symlink() and not name.startswith(DOWNLOADS):
                files[name] = p
    for name in TOP_FILES:
        files[name] = Path(root) / name
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write(build_dir: Path, out_dir: Path, version: str | None = None) -> Path:
    """Pack the build into out_dir/bnpaper-<version>-<profile>.tar.gz (written atomically)."""
    from importlib.metadata import version as pkg_version

    from bnpaper.cache import write_bytes_atomic

    build_dir, out_dir = Path(build_dir), Path(out_dir)
    version = version or pkg_version("bnpaper")
    profile = build_profile(build_dir)
    top = f"bnpaper-{version}-{profile}"
    from bnpaper.book import pages

    if (build_dir / "html" / "index.html").is_file():  # the page offers the archive written below
        pages.refresh_landing(build_dir, profile, also=("release",))
    files = collect(build_dir, profile=profile)
    mtime = source_date(build_dir)
    payload = {name: path.read_bytes() for name, path in files.items()}
    sums = "".join(f"{sha256(data)}  {name}\n" for name, data in sorted(payload.items()))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(payload):
            _add(tar, f"{top}/{name}", payload[name], mtime)
        _add(tar, f"{top}/{SUMS}", sums.encode(), mtime)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    path = out_dir / f"{top}.tar.gz"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, packed.getvalue())
    write_bytes_atomic(build_dir / DOWNLOADS / path.name, packed.getvalue())  # the landing page's link
    return path


def verify(archive: Path) -> int:
    """Check every file of the archive against its SHA256SUMS; returns how many were checked.
    Raises ReleaseError naming every missing, extra or changed file."""
    archive = Path(archive)
    if not archive.exists():
        raise ReleaseError(f"no archive at {archive}")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ReleaseError(f"{archive} is not a readable .tar.gz ({e})") from e
    sums_name = next((n for n in members if n.endswith(f"/{SUMS}") and n.count("/") == 1), None)
    if sums_name is None:
        raise ReleaseError(f"{archive} holds no {SUMS} at its top folder")
    top = sums_name.split("/")[0]
    listed = {}
    for line in members[sums_name].decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[f"{top}/{name}"] = digest
    problems = [f"missing: {n}" for n in sorted(set(listed) - set(members))]
    problems += [f"not listed in {SUMS}: {n}" for n in sorted(set(members) - set(listed) - {sums_name})]
    problems += [
        f"changed: {n}" for n in sorted(set(listed) & set(members)) if sha256(members[n]) != listed[n]
    ]
    if problems:
        raise ReleaseError(
            f"{archive} does not verify ({len(problems)} problems): " + "; ".join(problems[:10])
        )
    return len(listed)
