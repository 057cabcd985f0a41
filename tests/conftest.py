"""Shared fixtures. `smoke_book` builds the whole book once per test session in the smoke profile."""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOK_BUILD = REPO / "_build" / "test-book"  # kept after the run, for people to look at


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """Both editions, every chapter, smoke profile, CPU, a fresh cache: returns _build/test-book/html."""
    from bnpaper.book.pipeline import build_book

    if os.environ.get("BNPAPER_REUSE_TEST_BOOK") == "1" and (BOOK_BUILD / "html" / "ar").is_dir():
        return BOOK_BUILD / "html"  # a developer's shortcut: check the last smoke build again
    shutil.rmtree(BOOK_BUILD, ignore_errors=True)
    old = os.environ.get("BNPAPER_CACHE")
    os.environ["BNPAPER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    # the kernels must capture their stderr as in a real build (ipykernel skips that under pytest),
    # or a progress bar or warning leaking into a page could never be seen by the page tests
    current = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        html = build_book(profile="smoke", device="cpu", langs="en,ar", build_dir=BOOK_BUILD, progress=True)
    finally:
        if current is not None:
            os.environ["PYTEST_CURRENT_TEST"] = current
        if old is None:
            os.environ.pop("BNPAPER_CACHE", None)
        else:
            os.environ["BNPAPER_CACHE"] = old
    return html


@pytest.fixture(autouse=True)
def _one_worker(monkeypatch):
    """Unit tests train in-process (tests/test_engine.py checks the worker pool on its own)."""
    if "BNPAPER_WORKERS" not in os.environ:
        monkeypatch.setenv("BNPAPER_WORKERS", "1")


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the bnpaper sources that the cache keys read (edits here touch no real file)."""
    from bnpaper import cache

    copy = tmp_path / "bnpaper"
    shutil.copytree(cache.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE_DIR", copy)
    for fn in (cache.module_closure, cache.modules_hash):
        fn.cache_clear()
    yield copy
    for fn in (cache.module_closure, cache.modules_hash):
        fn.cache_clear()
