"""Extending the book: a reader's experiment module, dropped into bnpaper/experiments/, joins the
ledger with no other file edited (issue 16). Tested in a temporary copy of the package."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from bnpaper import ledger
from bnpaper.experiments import names

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import bnpaper
    from bnpaper import ledger, prereg, profiles
    from bnpaper.experiments import my_claim, names
    assert bnpaper.__file__.startswith(sys.argv[1]), bnpaper.__file__  # the copy, not the checkout
    assert prereg.lock(ledger.owned()) != []  # pre-register: lock the new claim's protocol first
    seeds = profiles.eval_seeds("smoke")
    res = my_claim.run(my_claim.Config(steps=20, seeds=seeds, hidden=[16]))
    ledger.record("small-lr-bn-no-worse", res, profile="smoke", n=2, seeds=seeds)
    row = next(r for r in ledger.rows("smoke") if r["claim"].id == "small-lr-bn-no-worse")
    print(json.dumps({"names": names(), "verdict": row["verdict"], "n": row["estimate"].n,
                      "value": row["estimate"].value}))
    """
)


def test_the_template_is_not_a_chapter_of_the_book():
    assert "_template" not in names() and "small-lr-bn-no-worse" not in ledger.by_id()


def test_a_module_dropped_in_joins_the_ledger(tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "bnpaper", pkg / "bnpaper", ignore=shutil.ignore_patterns("__pycache__"))
    experiments = pkg / "bnpaper" / "experiments"
    shutil.copyfile(experiments / "_template.py", experiments / "my_claim.py")  # the reader's module
    shutil.copyfile(experiments / "_template.yml", experiments / "my_claim.yml")  # and its words
    env = {
        **os.environ,
        "PYTHONPATH": str(pkg),
        "BNPAPER_LEDGER": str(tmp_path / "ledger"),
        "BNPAPER_LOCK": str(tmp_path / "protocols.lock"),
        "BNPAPER_CACHE": str(tmp_path / "cache"),
        "BNPAPER_WORKERS": "1",
        "BNPAPER_PROGRESS": "0",
    }
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(pkg)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "my_claim" in out["names"] and out["n"] == 2
    assert (
        out["verdict"] in ("holds", "does_not_hold", "inconclusive") and out["value"] == out["value"]
    )  # not NaN
    assert (tmp_path / "ledger" / "smoke" / "embedded" / "small-lr-bn-no-worse.json").exists()
