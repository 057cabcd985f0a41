"""Parameter validation (before anything runs), the command line's errors, the results cache."""

import json

import pytest
import torch

from bnpaper import cache
from bnpaper.book.chapters import ChapterError, find_chapter, validate_params
from bnpaper.book.pipeline import parse_langs
from bnpaper.cli import main
from bnpaper.device import resolve_device


@pytest.fixture
def ch():
    return find_chapter("01")


def test_defaults_and_coercion(ch):
    p = validate_params(ch, {"seeds": "7", "profile": "smoke"})
    assert p["seeds"] == 7 and p["profile"] == "smoke" and p["device"] == "auto"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sedes": 3}, r"unknown parameter 'sedes'.*its parameters are: .*seeds \(default 0\)"),
        ({"seeds": "many"}, r"parameter 'seeds' expects a int .*got 'many'"),
        ({"seeds": "2.5"}, r"parameter 'seeds' expects a int"),
        ({"seeds": -1}, r"'seeds' must be in \[0, 10000\], got -1"),
        ({"m": 1}, r"'m' must be in \[2, 100000\], got 1"),
        ({"profile": "fast"}, r"'profile' must be one of smoke, quick, paper; got 'fast'"),
        ({"device": "tpu"}, r"'device' must be one of auto, cpu, cuda; got 'tpu'"),
    ],
)
def test_bad_parameters(ch, overrides, message):
    with pytest.raises(ChapterError, match=message):
        validate_params(ch, overrides)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu(ch):
    with pytest.raises(ChapterError, match="no CUDA GPU is available.*Use device 'cpu' or 'auto'"):
        validate_params(ch, {"device": "cuda"})
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_chapter_and_langs():
    with pytest.raises(
        ChapterError, match="unknown chapter 'nope'; choose one of: 00_intro, 01_bn_transform"
    ):
        find_chapter("nope")
    assert parse_langs("en, ar") == ["en", "ar"]
    with pytest.raises(ChapterError, match="--lang takes"):
        parse_langs("en,fr")


def test_cli_errors_are_one_paragraph(capsys):
    assert main(["execute", "01", "-p", "sedes", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bnpaper execute: error: chapter 01_bn_transform: unknown parameter 'sedes'")
    assert "Traceback" not in err
    assert main(["book", "--profile", "huge", "--build-dir", "/nonexistent/never-created"]) == 2
    assert "'profile' must be one of smoke, quick, paper" in capsys.readouterr().err
    assert main(["execute", "--list"]) == 0
    assert "01_bn_transform" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- cache


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_runs_once_per_config(tmp_cache):
    calls = []

    def run(cfg):
        calls.append(cfg)
        return {"value": cfg["x"] * 2}

    a = cache.cached("exp", {"x": 3}, run)
    b = cache.cached("exp", {"x": 3}, run)
    c = cache.cached("exp", {"x": 4}, run)
    assert a["value"] == b["value"] == 6 and c["value"] == 8
    assert len(calls) == 2  # the second call with {"x": 3} was served from disk
    assert a == b == {"value": 6}
    assert not list(tmp_cache.rglob("*.tmp"))


RUNS = {  # a run of each kind, by the module whose code it runs
    "verify": "bnpaper.experiments.verify",  # no training
    "trained": "bnpaper.engine",  # every trained network
    "conv-pair": "bnpaper.experiments.conv",
}


def _keys():
    for fn in (cache.module_closure, cache.modules_hash):
        fn.cache_clear()
    return {name: cache.config_key(name, {"x": 1}, module) for name, module in RUNS.items()}


def _edit(path):
    path.write_text(path.read_text() + "\n# an edit\n")


def test_editing_book_ledger_plotting_retrains_nothing(package_copy):
    before = _keys()
    for rel in ("book/pages.py", "book/pipeline.py", "ledger.py", "plotting.py", "report.py"):
        _edit(package_copy / rel)
        assert _keys() == before, rel


def test_editing_models_retrains_exactly_the_runs_that_use_it(package_copy):
    before = _keys()
    _edit(package_copy / "models.py")
    after = _keys()
    assert after["verify"] == before["verify"]  # Algorithm 1 checks import no network
    assert after["trained"] != before["trained"] and after["conv-pair"] != before["conv-pair"]
    _edit(package_copy / "functional.py")  # BN's math: every run that normalizes
    assert all(v != after[k] for k, v in _keys().items())


def test_cached_reruns_only_after_an_edit_it_uses(package_copy, tmp_cache):
    calls = []

    def run(cfg):
        calls.append(cfg)
        return {"v": 1}

    run.__module__ = "bnpaper.experiments.verify"
    cache.cached("verify", {"x": 1}, run)
    _edit(package_copy / "ledger.py")
    for fn in (cache.module_closure, cache.modules_hash):
        fn.cache_clear()
    cache.cached("verify", {"x": 1}, run)
    assert len(calls) == 1
    _edit(package_copy / "autograd.py")
    for fn in (cache.module_closure, cache.modules_hash):
        fn.cache_clear()
    cache.cached("verify", {"x": 1}, run)
    assert len(calls) == 2
    record = json.loads(next(tmp_cache.rglob("*.json")).read_text())
    assert "bnpaper.autograd" in record["modules"] and "bnpaper.ledger" not in record["modules"]


def test_corrupt_cache_entry_is_recomputed(tmp_cache, capsys):
    cache.cached("exp", {"x": 1}, lambda c: {"v": 1})
    (path,) = tmp_cache.rglob("*.json")
    path.write_text("{ half a record")
    out = cache.cached("exp", {"x": 1}, lambda c: {"v": 2})
    assert out["v"] == 2 and "ignoring corrupt entry" in capsys.readouterr().out
    assert json.loads(path.read_text())["result"]["v"] == 2


def test_failed_run_leaves_no_entry(tmp_cache):
    def boom(cfg):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError):
        cache.cached("exp", {"x": 9}, boom)
    assert not tmp_cache.exists() or not list(tmp_cache.rglob("*"))


def test_every_chapters_defaults_are_valid():
    from bnpaper.book.chapters import chapters

    for name, chapter in chapters().items():
        params = validate_params(chapter, {})
        assert params["profile"] == "quick" and params["device"] == "auto" and params["lang"] == "en", name


def test_a_run_defined_outside_the_package_is_keyed_by_the_whole_package(monkeypatch):
    """A notebook's own function ("__main__") imports nothing the key could follow."""
    k1 = cache.config_key("exp", {"x": 1}, "__main__")
    monkeypatch.setattr(cache, "source_hash", lambda: "another-source")
    assert cache.config_key("exp", {"x": 1}, "__main__") != k1
