"""One on-disk store for experiment results and trained weights, keyed by what a run uses.

Key: the experiment's name, its config (a dataclass, seed included) and a hash of the source of
the bnpaper modules the run's code imports, followed transitively (`module_closure`). Editing the
book pipeline, the ledger, the plotting code or a chapter's prose changes no run's key, so nothing
retrains; editing `models.py` changes the key of exactly the runs whose code imports it.

A record is JSON (the result and its provenance: config, the modules and their hash, wall time),
optionally with tensors beside it (trained weights, `torch.save`). Both are written atomically
(temporary file + os.replace), tensors first: the JSON is written last and is what makes an entry
exist, so an interrupted run never leaves a half-written entry that a later run would trust.
A corrupt entry is reported and recomputed, never trusted.

The folder is $BNPAPER_CACHE, else .bnpaper-cache/ in the current directory.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name  # "bnpaper"
# the package data files a module reads: they count in the key of a run whose code imports it
DATA_FILES = {
    "glossary": ("glossary.yml",),
    "plotting": ("glossary.yml",),
    "counting": ("counted.yml",),
    "prereg": ("protocols.lock",),
    "ledger": ("exploratory.json", "confirmatory.json"),
}


@functools.cache
def source_hash() -> str:
    """sha256 over every .py and data file of the bnpaper package (sorted by path): provenance."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE_DIR.rglob("*")):
        if p.is_file() and p.suffix in {".py", ".yml", ".bib"} and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(PACKAGE_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def module_file(name: str) -> Path | None:
    """bnpaper.x.y -> bnpaper/x/y.py (or its __init__.py); None outside the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports(path: Path) -> set[str]:
    """The bnpaper modules a file imports (import a.b, from a.b import c -> a.b and a.b.c)."""
    return imported_modules(path.read_text(encoding="utf-8"))


def imported_modules(source: str) -> set[str]:
    """The bnpaper modules a piece of Python source imports (a chapter's code cells, a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:  # absolute imports only
            for a in node.names:  # `from bnpaper import functional` depends on bnpaper.functional only
                sub = f"{node.module}.{a.name}"
                out.add(sub if module_file(sub) else node.module)
    return {m for m in out if m == PACKAGE or m.startswith(PACKAGE + ".")}


@functools.cache
def module_closure(name: str) -> tuple[str, ...]:
    """Every bnpaper module `name` depends on through its imports (itself included), sorted.

    The package's __init__ counts only where a module imports `bnpaper` itself, since submodule
    imports go through it anyway; its own re-exports are followed like any import.
    """
    seen: set[str] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        path = module_file(mod)
        if mod in seen or path is None:
            continue
        seen.add(mod)
        todo.extend(_imports(path) - seen)
    return tuple(sorted(seen))


@functools.cache
def modules_hash(modules: tuple[str, ...]) -> str:
    """sha256 over the source of the given modules' closures (and the package data files they read)."""
    h = hashlib.sha256()
    files = {module_file(m) for name in modules for m in module_closure(name)} - {None}
    data = {PACKAGE_DIR / "data" / f for p in files for f in DATA_FILES.get(p.stem, ())}
    files |= {p for p in data if p.is_file()}  # a data file not written yet (no lock so far) keys nothing
    for p in sorted(files):
        h.update(str(p.relative_to(PACKAGE_DIR)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("BNPAPER_CACHE", ".bnpaper-cache")).resolve()


def _plain(config: Any) -> Any:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config


def config_key(name: str, config: Any, module: str = PACKAGE) -> str:
    """The store key of a run: its name, config and the source of the modules `module` imports.

    A run defined outside the package (a notebook's own function, "__main__") is keyed by the
    whole package's source: what it uses cannot be read from its imports."""
    inside = module_file(module) is not None
    source = modules_hash((module,)) if inside else source_hash()
    fields = {"name": name, "config": _plain(config), "source": source}
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename: a reader sees the old file or the new
    one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=1, default=str).encode("utf-8"))


def _paths(name: str, key: str) -> tuple[Path, Path]:
    folder = cache_dir() / name
    return folder / f"{key}.json", folder / f"{key}.pt"


def load(name: str, key: str, *, tensors: bool = False) -> tuple[dict, Any] | None:
    """The stored (record, tensors or None) under name/key, or None if absent or corrupt."""
    import torch

    record_path, tensor_path = _paths(name, key)
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        record["result"]  # noqa: B018 (a record without a result is corrupt)
        stored = torch.load(tensor_path, map_location="cpu", weights_only=True) if tensors else None
        return record, stored
    except (json.JSONDecodeError, KeyError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        print(f"bnpaper cache: ignoring corrupt entry {record_path} ({type(e).__name__}: {e}); recomputing")
        return None


def save(name: str, key: str, record: dict, tensors: Any = None) -> None:
    """Store a record (and tensors); the JSON goes last, so an entry exists only once complete."""
    record_path, tensor_path = _paths(name, key)
    if tensors is not None:
        import torch

        tensor_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tensor_path.with_suffix(f".{os.getpid()}.tmp")
        try:
            torch.save(tensors, tmp)
            os.replace(tmp, tensor_path)
        finally:
            tmp.unlink(missing_ok=True)
    write_json_atomic(record_path, record)


def provenance(name: str, config: Any, module: str, wall: float) -> dict:
    return {
        "name": name,
        "config": _plain(config),
        "modules": list(module_closure(module)),
        "source": modules_hash((module,)),
        "wall_s": wall,
    }


def cached(name: str, config: Any, run: Callable[[Any], dict], *, refresh: bool = False) -> dict:
    """run(config) once per (name, config, source of the modules run's module imports).

    The stored record holds the result plus its provenance (config, modules, source hash, wall
    time); the result comes back exactly as run(config) returned it (after a JSON round trip on a
    hit). A corrupt cache file is reported and recomputed, never trusted.
    """
    module = getattr(run, "__module__", None) or PACKAGE
    key = config_key(name, config, module)
    hit = None if refresh else load(name, key)
    if hit is not None:
        return hit[0]["result"]
    t0 = time.perf_counter()
    result = run(config)
    save(name, key, {**provenance(name, config, module, time.perf_counter() - t0), "result": result})
    return result
