"""The claims ledger: every claim the book tests, the paper's number, ours, and the verdict.

Each claim is owned by the experiment module that measures it (its `CLAIMS`, each with a protocol
fixed before the run: bnpaper.protocol). Chapters call `record(claim_id, measurement, ...)` with
the per-seed numbers they computed; the ledger page calls `rows(profile, data_dir)`, which applies
each claim's protocol to its latest measurement. This module only collects and renders: a claim
with no measurement, or one made under an older protocol version, shows as "not run", never as a
pass.

Records live in $BNPAPER_LEDGER/<profile>/<data>/<claim>.json (the pipeline points
BNPAPER_LEDGER at _build/ledger for `bnpaper book`, and elsewhere for one-off `bnpaper execute`).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from bnpaper.cache import source_hash, write_json_atomic
from bnpaper.protocol import VERDICTS, Claim

__all__ = ["VERDICTS", "Claim", "claims", "by_id", "record", "rows", "records_hash"]


def claims() -> tuple[Claim, ...]:
    """Every claim, from the experiment modules that own them, in chapter order."""
    from bnpaper.experiments import modules

    out: list[Claim] = []
    for mod in modules():
        out.extend(getattr(mod, "CLAIMS", ()))
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
) -> Path:
    """Store a chapter's measurement for a claim (overwriting the previous one for this profile and
    data), with the version of the protocol it was measured under."""
    known = by_id()
    if claim_id not in known:
        raise KeyError(f"unknown claim {claim_id!r}; known: {', '.join(known)}")
    claim = known[claim_id]
    if claim.protocol is None:
        raise ValueError(f"claim {claim_id!r} is not testable here; nothing to record")
    path = ledger_dir() / profile / data_key(data_dir) / f"{claim_id}.json"
    content = {
        "claim": claim_id,
        "protocol_version": claim.protocol.version,
        "measurement": measurement,
        "profile": profile,
        "n": n,
        "data": data,
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


def _content(record: dict) -> dict:
    """A record without its provenance stamp (when and by which source it was written)."""
    return {k: v for k, v in record.items() if k not in ("source", "recorded")}


def rows(profile: str, data_dir: str = "", folder: Path | None = None) -> list[dict]:
    """One row per claim: the verdict of its protocol applied to its latest measurement; "not_run"
    if there is none or it was measured under an older protocol version; "not_testable" if the
    claim needs what this book cannot run."""
    base = (folder or ledger_dir()) / profile / data_key(data_dir)
    out = []
    for c in claims():
        row = {"claim": c, "verdict": "not_run", "estimate": None, "record": None, "problem": ""}
        if c.protocol is None:
            row["verdict"] = "not_testable"
        else:
            path = base / f"{c.id}.json"
            if path.exists():
                try:
                    rec = json.loads(path.read_text(encoding="utf-8"))
                    if rec.get("protocol_version") != c.protocol.version:
                        row["problem"] = (
                            f"measured under protocol v{rec.get('protocol_version')}, "
                            f"now v{c.protocol.version}"
                        )
                    else:
                        row["verdict"], row["estimate"] = c.judge(rec["measurement"], profile)
                        row["record"] = rec
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    row["problem"] = f"unreadable record {path.name}: {e}"
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"claim {c.id}: unknown verdict {row['verdict']!r}")
        out.append(row)
    return out


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
