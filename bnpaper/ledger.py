"""The claims ledger: every claim the book tests, the paper's number, ours, and the verdict.

Each claim is owned by the experiment module that measures it (its `CLAIMS`, each with a protocol
fixed before the run: bnpaper.protocol). Chapters call `record(claim_id, measurement, ...)` with
the per-seed numbers they computed; the ledger page calls `rows(profile, data_dir)`, which applies
each claim's protocol to its latest measurement. A record is judged only if the claim's protocol is
locked (bnpaper.prereg: bnpaper/data/protocols.lock), the record was measured under that digest, and
its seeds and run lengths are the locked plan's; otherwise the row says which of these differs and
shows "not run", never a pass. Deterministic checks are rows of their own kind ("check"); the
verdicts of the sampling-based claims are adjusted together for multiplicity (Holm), and each row
keeps its unadjusted verdict beside the adjusted one.

Records live in $BNPAPER_LEDGER/<profile>/<data>/<claim>.json (the pipeline points
BNPAPER_LEDGER at _build/ledger for `bnpaper book`, and elsewhere for one-off `bnpaper execute`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from bnpaper import prereg
from bnpaper.cache import config_key, source_hash, write_json_atomic
from bnpaper.errors import MissingError, UnknownNameError
from bnpaper.protocol import VERDICTS, Claim, adjusted_verdict, decisive_p, digest, flags, holm

__all__ = ["VERDICTS", "Claim", "claims", "by_id", "record", "rows", "records_hash"]


def owned() -> list[tuple[Claim, str]]:
    """(claim, the name of the experiment module that owns it), in chapter order."""
    from bnpaper.experiments import modules

    return [(c, mod.__name__.rsplit(".", 1)[-1]) for mod in modules() for c in getattr(mod, "CLAIMS", ())]


def claims() -> tuple[Claim, ...]:
    """Every claim, from the experiment modules that own them, in chapter order."""
    out = [c for c, _ in owned()]
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique, got {sorted(i for i in ids if ids.count(i) > 1)}")
    return tuple(out)


def by_id() -> dict[str, Claim]:
    return {c.id: c for c in claims()}


def __getattr__(name):  # ledger.CLAIMS / ledger.BY_ID, gathered when first asked for
    if name == "CLAIMS":
        return claims()
    if name == "BY_ID":
        return by_id()
    raise AttributeError(name)


def ledger_dir() -> Path:
    return Path(os.environ.get("BNPAPER_LEDGER", "_build/ledger")).resolve()


def data_key(data_dir: str) -> str:
    return (
        "embedded"
        if not data_dir
        else "idx-" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
    )


def record(
    claim_id: str,
    measurement: dict,
    *,
    profile: str,
    data_dir: str = "",
    n: int | None = None,
    data: str = "",
    seeds: list[int] | None = None,
    lengths: dict | None = None,
    config=None,
    run: str = "",
) -> Path:
    """Store a chapter's measurement for a claim (overwriting the previous one for this profile and
    data), with what it was measured under: the protocol's version and digest, the evaluation seeds,
    the run lengths (the experiment's profile settings as the chapter used them), and the config and
    store key of the run that produced it (`run`: the name the chapter's `cached` call gives it)."""
    known = {c.id: (c, m) for c, m in owned()}  # claim id -> (claim, its experiment module)
    if claim_id not in known:
        raise UnknownNameError(f"unknown claim {claim_id!r}; known: {', '.join(known)}")
    claim, module = known[claim_id]
    if claim.protocol is None:
        raise ValueError(f"claim {claim_id!r} is not testable here; nothing to record")
    path = ledger_dir() / profile / data_key(data_dir) / f"{claim_id}.json"
    content = {
        "claim": claim_id,
        "protocol_version": claim.protocol.version,
        "digest": digest(claim),
        "measurement": measurement,
        "profile": profile,
        "n": n,
        "data": data,
        "seeds": None if seeds is None else [int(s) for s in seeds],
        "lengths": lengths or {},
        "config": _plain(config),
        "cache_key": config_key(run, config, f"bnpaper.experiments.{module}") if run and config else "",
    }
    if path.exists():  # the same measurement again (the other edition, a re-run): keep the record as it is
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if _content(old) == json.loads(json.dumps(content, default=str)):
                return path
        except (json.JSONDecodeError, OSError):
            pass
    stamp = {"source": source_hash(), "recorded": datetime.now(UTC).isoformat(timespec="seconds")}
    write_json_atomic(path, {**content, **stamp})
    return path


def _plain(config):
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(config, default=str))


def _content(record: dict) -> dict:
    """A record without its provenance stamp (when and by which source it was written)."""
    return {k: v for k, v in record.items() if k not in ("source", "recorded")}


def rows(
    profile: str, data_dir: str = "", folder: Path | None = None, lock: dict | None = None
) -> list[dict]:
    """One row per claim: its protocol applied to its latest measurement.

    Each row: claim, kind ("claim", "check" or "untestable"), verdict (for claims: Holm-adjusted
    over every sampling-based claim with a record), unadjusted (the verdict of the claim alone),
    estimate, p (the two decisive p-values, unadjusted and adjusted), flags, digest, record, problem.
    "not_run" where there is no record, or the record or the protocol is not the locked one."""
    base = (folder or ledger_dir()) / profile / data_key(data_dir)
    lock = prereg.read_lock() if lock is None else lock
    out = []
    for c in claims():
        row = {
            "claim": c,
            "kind": "untestable" if c.protocol is None else ("check" if c.protocol.is_check else "claim"),
            "verdict": "not_run",
            "unadjusted": "not_run",
            "estimate": None,
            "p": None,
            "flags": [],
            "digest": "",
            "record": None,
            "problem": "",
        }
        out.append(row)
        if c.protocol is None:
            row["verdict"] = row["unadjusted"] = "not_testable"
            continue
        row["digest"] = digest(c)
        entry = prereg.entry_for(c, lock)
        if entry is None or entry["digest"] != row["digest"]:
            row["problem"] = prereg.differences([(c, "")], lock)[c.id]
            continue
        path = base / f"{c.id}.json"
        if not path.exists():
            continue
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            why = prereg.check_record(rec, entry, profile)
            if why:
                row["problem"] = why
                continue
            row["unadjusted"], row["estimate"] = c.judge(rec["measurement"], profile)
            row["record"] = rec
            row["flags"] = flags(row["estimate"], c.protocol)
            if row["kind"] == "claim" and not row["estimate"].note.get("too_few_runs"):
                row["p"] = decisive_p(lambda m=rec["measurement"], c=c: c.estimate(m), c.protocol)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            row["problem"] = f"unreadable record {path.name}: {e}"
    family = {
        (r["claim"].id, which): r["p"][which] for r in out if r["p"] for which in ("holds", "does_not_hold")
    }
    adjusted = holm(family)
    for r in out:
        if r["kind"] != "claim" or r["unadjusted"] == "not_run":
            r["verdict"] = r["unadjusted"]
        elif r["p"] is None:  # too few runs: inconclusive either way
            r["verdict"] = r["unadjusted"]
        else:
            adj = {w: adjusted[(r["claim"].id, w)] for w in ("holds", "does_not_hold")}
            r["p"] = {**r["p"], "adjusted": adj}
            r["verdict"] = adjusted_verdict(adj)
        for v in (r["verdict"], r["unadjusted"]):
            if v not in VERDICTS:
                raise ValueError(f"claim {r['claim'].id}: unknown verdict {v!r}")
    return out


def exploratory(profile: str) -> dict[str, dict]:
    """The verdicts of the exploratory pass (evaluation seeds 0-9, the protocols of that time, before
    any lock), frozen in bnpaper/data/exploratory.json by the build that made them: claim id ->
    {"verdict", "value", "lo", "hi", "version", "seeds"}. Empty where that profile was not built."""
    from importlib import resources

    path = resources.files("bnpaper").joinpath("data/exploratory.json")
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("profiles", {}).get(profile, {})


FROZEN = "data/confirmatory.json"


def _frozen_path() -> Path:
    from importlib import resources

    return Path(str(resources.files("bnpaper").joinpath(FROZEN)))


def freeze(profile: str, commit: str, date: str, folder: Path | None = None) -> dict:
    """Write the confirmatory verdicts of one profile's build (its ledger records, judged and Holm-
    adjusted by `rows`) into bnpaper/data/confirmatory.json, beside any other profile's: claim id ->
    {"verdict", "unadjusted", "value", "lo", "hi", "n", "digest", "seeds"}. A book built in the other
    profile shows them in its ledger (`other_profile`) without re-running this one; `commit` and
    `date` say which build made them (the embedded digits only). Returns the entry."""
    entry: dict = {}
    for r in rows(profile, "", folder):
        if r["record"] is None:
            continue
        est = r["estimate"]
        entry[r["claim"].id] = {
            "verdict": r["verdict"],
            "unadjusted": r["unadjusted"],
            "value": est.value,
            "lo": est.lo,
            "hi": est.hi,
            "n": est.n,
            "digest": r["digest"],
            "seeds": r["record"].get("seeds"),
        }
    if not entry:
        raise MissingError(
            f"no {profile!r} record to freeze in {(folder or ledger_dir()) / profile}: build that profile "
            "first (make paper for 'paper')"
        )
    path = _frozen_path()
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"profiles": {}}
    data["profiles"][profile] = {"commit": commit, "date": date, "claims": entry}
    write_json_atomic(path, data)
    return data["profiles"][profile]


def other_profile(profile: str, data_dir: str = "", folder: Path | None = None) -> tuple[str, dict, dict]:
    """(the other profile's name, claim id -> its row, where the rows come from) for the ledger's
    column beside this profile's verdicts: this machine's records of that profile when it has any
    ({"kind": "built"}), else its frozen confirmatory verdicts (`freeze`: {"kind": "frozen",
    "commit", "date"}), else nothing ({"kind": "none"}). A frozen verdict whose digest is not the
    claim's current one is left out: it judged another protocol."""
    other = "paper" if profile != "paper" else "quick"
    live = {r["claim"].id: r for r in rows(other, data_dir, folder) if r["record"] is not None}
    if live:
        return other, live, {"kind": "built"}
    path = _frozen_path()
    if not path.is_file() or data_dir:
        return other, {}, {"kind": "none"}
    frozen = json.loads(path.read_text(encoding="utf-8"))["profiles"].get(other, {})
    current = {c.id: digest(c) for c in claims() if c.protocol is not None}
    found = {
        cid: {**e, "record": True}
        for cid, e in frozen.get("claims", {}).items()
        if current.get(cid) == e["digest"]
    }
    if not found:
        return other, {}, {"kind": "none"}
    return other, found, {"kind": "frozen", "commit": frozen["commit"], "date": frozen["date"]}


def records_hash(profile: str, data_dir: str = "", folder: Path | None = None) -> str:
    """A hash of every record for this profile and data: the ledger page re-executes when it changes."""
    base = (folder or ledger_dir()) / profile / data_key(data_dir)
    h = hashlib.sha256()
    for p in sorted(base.glob("*.json")) if base.exists() else []:
        h.update(p.name.encode())
        try:  # the measurement, not when it was written: an unchanged rewrite re-executes nothing
            h.update(json.dumps(_content(json.loads(p.read_bytes())), sort_keys=True).encode())
        except json.JSONDecodeError:
            h.update(p.read_bytes())
    return h.hexdigest()[:16]
