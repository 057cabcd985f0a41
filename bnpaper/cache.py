"""On-disk cache of experiment results, so both editions (and re-runs) reuse one training run.

Key: the experiment's name, its config (a dataclass, seed included) and a hash of the bnpaper
source that ran it: editing any module of the package invalidates every cached result.
Values are JSON, written atomically (temporary file + os.replace), so an interrupted run never
leaves a half-written result that a later run would trust.

The folder is $BNPAPER_CACHE, else .bnpaper-cache/ in the current directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 over every .py and data file of the bnpaper package (sorted by path)."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE_DIR.rglob("*")):
        if p.is_file() and p.suffix in {".py", ".yml", ".bib"} and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(PACKAGE_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("BNPAPER_CACHE", ".bnpaper-cache")).resolve()


def config_key(name: str, config: Any) -> str:
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    blob = json.dumps({"name": name, "config": cfg, "source": source_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(name: str, config: Any, run: Callable[[Any], dict], *, refresh: bool = False) -> dict:
    """run(config) once per (name, config, source); later calls load the stored result.

    The stored record holds the result plus its provenance (config, source hash, wall time);
    the result comes back exactly as run(config) returned it (after a JSON round trip on a hit).
    A corrupt cache file is reported and recomputed, never trusted.
    """
    path = cache_dir() / name / f"{config_key(name, config)}.json"
    if path.exists() and not refresh:
        try:
            return json.loads(path.read_text(encoding="utf-8"))["result"]
        except (json.JSONDecodeError, KeyError) as e:
            print(f"bnpaper cache: ignoring corrupt entry {path} ({e}); recomputing")
    t0 = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - t0
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    write_json_atomic(
        path, {"name": name, "config": cfg, "source": source_hash(), "wall_s": wall, "result": result}
    )
    return result
