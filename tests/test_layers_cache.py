"""The package's layers, enforced (issue 24): the core, the engine and the experiments never import
the book, the plotting, the glossary or the claim printing; no import circles; no module reaches
into another's private names; and the cache promise (a run's key follows only what its code
imports) holds for every experiment module: editing the presentation layer retrains nothing."""

import ast

import pytest

from bnpaper import cache
from bnpaper.experiments import names

# What prints, plots and builds the book. Nothing that computes a result may import these.
PRESENTATION = {
    "bnpaper.plotting",
    "bnpaper.claims_view",
    "bnpaper.glossary",
    "bnpaper.i18n",
    "bnpaper.report",
    "bnpaper.ledger",
    "bnpaper.paper_numbers",
    "bnpaper.cli",
}


def _all_modules() -> dict[str, set[str]]:
    """Every module of the package -> the bnpaper modules it imports (function-level imports too)."""
    out = {}
    for p in cache.PACKAGE_DIR.rglob("*.py"):
        rel = p.relative_to(cache.PACKAGE_DIR.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = cache.imported_modules(p.read_text(encoding="utf-8")) - {name}
    return out


def _is_presentation(name: str) -> bool:
    return name in PRESENTATION or name.startswith("bnpaper.book")


COMPUTING = sorted(
    m
    for m in _all_modules()
    if not _is_presentation(m) and m not in ("bnpaper", "bnpaper.__main__", "bnpaper.bench")
)


@pytest.mark.parametrize("module", COMPUTING)
def test_computing_modules_never_import_the_presentation_layer(module):
    leaked = sorted(m for m in cache.module_closure(module) if _is_presentation(m))
    assert leaked == [], f"{module} imports (perhaps through others) {leaked}"


def test_the_rule_sees_a_leak():
    """The check above can fail: a computing module that imported claims_view would be caught."""
    closure = set(cache.module_closure("bnpaper.experiments.figure1")) | {"bnpaper.claims_view"}
    assert any(_is_presentation(m) for m in closure)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state, found = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph or nxt == "bnpaper":
                continue
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circles_even_through_function_level_imports():
    assert _cycles(_all_modules()) == []
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]  # the finder finds one


def test_no_module_imports_another_modules_private_names():
    bad = []
    for p in cache.PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bnpaper"):
                bad += [f"{p.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert bad == []


# ----------------------------------------------------------------------------- the cache promise


RUN_MODULES = [f"bnpaper.experiments.{n}" for n in names()] + ["bnpaper.engine", "bnpaper.sweep"]


def _keys():
    for fn in (cache.module_closure, cache.modules_hash):
        fn.cache_clear()
    return {m: cache.config_key("run", {"x": 1}, m) for m in RUN_MODULES}


PRESENTATION_FILES = [
    "plotting.py",
    "glossary.py",
    "data/glossary.yml",
    "claims_view.py",
    "i18n.py",
    "report.py",
    "ledger.py",
    "paper_numbers.py",
    *[f"book/{p.name}" for p in sorted((cache.PACKAGE_DIR / "book").glob("*.py"))],
    # the experiments' words (bnpaper.text): a reworded claim or protocol retrains nothing
    *[f"experiments/{p.name}" for p in sorted((cache.PACKAGE_DIR / "experiments").glob("*.yml"))],
]


@pytest.mark.parametrize("rel", PRESENTATION_FILES)
def test_editing_the_presentation_layer_retrains_nothing_anywhere(package_copy, rel):
    before = _keys()
    path = package_copy / rel
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    after = _keys()
    assert [m for m in RUN_MODULES if after[m] != before[m]] == []


def test_editing_what_a_run_computes_with_retrains_it(package_copy):
    """The other side: the promise is not kept by keying nothing. BN's math reaches every module
    that trains; the counted nouns reach the chapters that word claims with them."""
    before = _keys()
    path = package_copy / "functional.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    after = _keys()
    changed = {m for m in RUN_MODULES if after[m] != before[m]}
    assert changed >= {"bnpaper.engine", "bnpaper.experiments.figure1", "bnpaper.experiments.conv"}
