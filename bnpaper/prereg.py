"""Pre-registration, enforced: every claim's protocol locked by digest before its confirmatory run.

bnpaper/data/protocols.lock (JSON, committed) holds, per claim, the versions of its protocol in the
order they were locked, append-only: each with its digest (`protocol.digest`: every field, the
estimator's and the rule's source), the date it was locked, and its plan per profile, the evaluation
seeds and the run lengths (`profiles.settings`) the confirmatory run must use. When a version was
locked is proved by git: `locked_in` finds the commit that first wrote the digest.

  bnpaper lock           lock every protocol not locked yet (a new claim, or a new version);
                         refuses a changed protocol whose version was not raised
  bnpaper lock --check   exit 1 if any protocol differs from its lock (what the tests run)

The ledger (`bnpaper.ledger.rows`) judges a record only if the claim's current protocol is locked,
the record was measured under that digest, and its seeds and run lengths are the locked plan's;
otherwise it says which of these differs and shows the claim as not run.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from bnpaper import profiles
from bnpaper.cache import write_json_atomic
from bnpaper.errors import ConfigError
from bnpaper.protocol import Claim, digest

LOCK_NAME = "protocols.lock"


def lock_path() -> Path:
    override = os.environ.get("BNPAPER_LOCK")  # tests lock into a temporary copy
    return Path(override) if override else Path(str(resources.files("bnpaper").joinpath(f"data/{LOCK_NAME}")))


def read_lock(path: Path | None = None) -> dict:
    path = path or lock_path()
    if not path.exists():
        return {"claims": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path} is not valid JSON ({e}): restore it with `git checkout {path.name}`"
        ) from e


def plan(claim: Claim, module: str, profile: str) -> dict:
    """What a confirmatory run of `claim` must use in `profile`: its evaluation seeds (None for a
    check, whose seeds carry no sampling claim) and the run lengths of its experiment module."""
    p = claim.protocol
    seeds = None if p is None or p.is_check or not p.trains else profiles.eval_seeds(profile)
    lengths = profiles.SETTINGS[module][profile] if module in profiles.SETTINGS else {}
    return {"seeds": seeds, "lengths": dict(lengths)}


def entry_for(claim: Claim, lock: dict) -> dict | None:
    """The lock entry of this claim's current protocol version, or None if that version is not locked."""
    for e in lock.get("claims", {}).get(claim.id, []):
        if e["version"] == claim.protocol.version:
            return e
    return None


def differences(claims_with_modules: list[tuple[Claim, str]], lock: dict) -> dict[str, str]:
    """claim id -> why its protocol and its lock disagree ("" entries left out)."""
    out = {}
    for c, _module in claims_with_modules:
        if c.protocol is None:
            continue
        e = entry_for(c, lock)
        now = digest(c)
        if e is None:
            out[c.id] = f"protocol v{c.protocol.version} is not locked (run `bnpaper lock`)"
        elif e["digest"] != now:
            out[c.id] = (
                f"protocol v{c.protocol.version} changed after it was locked (digest {now}, locked "
                f"{e['digest']}): undo the edit, or raise the version and say what changed"
            )
    return out


def lock(claims_with_modules: list[tuple[Claim, str]], path: Path | None = None) -> list[str]:
    """Append an entry for every protocol version not locked yet; returns the claim ids locked.
    Refuses (before writing anything) a locked version whose protocol changed."""
    path = path or lock_path()
    data = read_lock(path)
    changed = {
        cid: why for cid, why in differences(claims_with_modules, data).items() if "changed after" in why
    }
    if changed:
        raise ConfigError(
            "these protocols changed without a new version; a protocol changed after its results were "
            "seen is a new version (raise Protocol.version, say what changed in `changes`):\n  "
            + "\n  ".join(f"{k}: {v}" for k, v in changed.items())
        )
    today = datetime.now(UTC).date().isoformat()
    added = []
    for c, module in claims_with_modules:
        if c.protocol is None or entry_for(c, data) is not None:
            continue
        data.setdefault("claims", {}).setdefault(c.id, []).append(
            {
                "version": c.protocol.version,
                "digest": digest(c),
                "locked": today,
                "plan": {prof: plan(c, module, prof) for prof in profiles.PROFILE_NAMES},
            }
        )
        added.append(c.id)
    if added:
        data["about"] = (
            "Append-only: one entry per locked protocol version (bnpaper/prereg.py). Written by "
            "`bnpaper lock`; the commit that first holds a digest is when that version was locked."
        )
        data["claims"] = dict(sorted(data["claims"].items()))
        write_json_atomic(path, data)
    return added


@functools.cache  # one git query per digest per process: history does not change mid-build
def locked_in(digest_value: str, path: Path | None = None) -> str:
    """The short hash of the first commit whose protocols.lock holds this digest ("uncommitted"
    when none does yet, "no git" outside a checkout)."""
    path = (path or lock_path()).resolve()
    try:
        out = subprocess.run(
            ["git", "log", "--reverse", "--format=%h", "-S", digest_value, "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return "no git"
    return out[0] if out else "uncommitted"


def check_record(rec: dict, entry: dict, profile: str) -> str:
    """Why a ledger record does not belong to the locked plan ("" when it does)."""
    if rec.get("digest") != entry["digest"]:
        return f"measured under protocol digest {rec.get('digest') or 'none'}, locked {entry['digest']}"
    want = entry["plan"].get(profile)
    if want is None:
        return f"no plan locked for the profile {profile!r}"
    if want["seeds"] is None:  # a check: no sampling, its seeds and lengths decide no verdict
        return ""
    if rec.get("seeds") != want["seeds"]:
        return f"seeds {_span(rec.get('seeds'))}, locked {_span(want['seeds'])}"
    got = rec.get("lengths") or {}
    diff = [f"{k} {got.get(k)} (locked {v})" for k, v in want["lengths"].items() if got.get(k) != v]
    if diff:
        return "run lengths differ from the locked plan: " + ", ".join(diff)
    return ""


def _span(seeds) -> str:
    if not seeds:
        return "none"
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))
