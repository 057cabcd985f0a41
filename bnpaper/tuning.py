"""Each arm tuned on its own grid, on validation data, with tuning seeds disjoint from evaluation.

A `Tuning` names one arm's hyperparameter and grid; `tune` trains every grid value on the tuning
seeds (`bnpaper.profiles.tuning_seeds`, the test set never read: `read_test=False`) and picks the
value with the highest mean final validation accuracy (a diverged run scores 0; ties go to the
smaller value). The quick and smoke profiles read the choice frozen in bnpaper/data/tuned.json with
its provenance (the command, the data, the seeds, the grid, every score and the source hash that
chose it), so the default book evaluates without re-tuning; the paper profile re-tunes.

`bnpaper tune` (re)writes the frozen file from the quick profile's settings.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from bnpaper import data as data_mod
from bnpaper import profiles
from bnpaper.cache import source_hash, write_json_atomic
from bnpaper.train import TrainConfig

FROZEN_PROFILE = "quick"


@dataclass(frozen=True)
class Tuning:
    key: str  # "figure1/bn": experiment / arm
    field: str  # the TrainConfig field tuned, e.g. "lr"
    grid: tuple[float, ...]  # a 2x grid or finer
    base: Callable[[str, int], TrainConfig]  # (profile, seed) -> the arm's config before tuning
    # an arm that TrainConfig alone cannot express (e.g. BN with frozen statistics) brings its own
    # trainer: (configs, profile) -> one history per config (with "diverged" and "final_val_acc")
    trainer: Callable[[list[TrainConfig], str], list[dict]] | None = None

    def __post_init__(self):
        if len(self.grid) < 2 or sorted(self.grid) != list(self.grid):
            raise ValueError(f"tuning {self.key}: the grid must hold >= 2 increasing values, got {self.grid}")


def frozen_path() -> Path:
    return Path(str(resources.files("bnpaper").joinpath("data/tuned.json")))


def tune(t: Tuning, profile: str, data_dir: str = "", device: str = "cpu") -> dict:
    """Train t.grid x tuning seeds; the choice and every score, with provenance."""
    from bnpaper.engine import trained_many  # the engine imports train, which this module's users import

    seeds = profiles.tuning_seeds(profile)
    cells = [(v, s) for v in t.grid for s in seeds]
    cfgs = [
        replace(t.base(profile, s), **{t.field: v}, read_test=False, data_dir=data_dir, device=device)
        for v, s in cells
    ]
    if t.trainer is None:
        hists = [h for _, h in trained_many(cfgs, desc=f"tune {t.key}")]
    else:
        hists = t.trainer(cfgs, profile)
    by_value: dict[float, list[float]] = {}
    for (v, _s), h in zip(cells, hists):
        by_value.setdefault(v, []).append(0.0 if h["diverged"] else h["final_val_acc"])
    scores = {repr(v): statistics.fmean(a) for v, a in by_value.items()}
    best = max(t.grid, key=lambda v: (scores[repr(v)], -v))
    return {
        "key": t.key,
        "field": t.field,
        "value": best,
        "grid": list(t.grid),
        "scores": scores,
        "score": "mean final validation accuracy over the tuning seeds (diverged = 0)",
        "tuning_seeds": seeds,
        "profile": profile,
        "steps": cfgs[0].steps,
        "data": data_mod.load(data_dir).describe(),
        "source": source_hash(),
        "date": datetime.now(UTC).date().isoformat(),
        "command": f"bnpaper tune --only {t.key}"
        if profile == FROZEN_PROFILE
        else "the paper profile's chapter",
        "at_grid_edge": best in (t.grid[0], t.grid[-1]),
    }


def read_frozen() -> dict:
    path = frozen_path()
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it with git or run `bnpaper tune`") from e


def tuned(t: Tuning, profile: str, data_dir: str = "", device: str = "cpu") -> dict:
    """The tuned value with its provenance: frozen for smoke/quick, re-tuned for paper."""
    if profile == "paper":
        return tune(t, profile, data_dir, device)
    frozen = read_frozen()
    if t.key not in frozen:
        raise KeyError(
            f"no frozen tuning for {t.key!r} in {frozen_path()}; run `bnpaper tune --only {t.key}` "
            "(it trains the grid on the tuning seeds and writes the choice with its provenance)"
        )
    entry = frozen[t.key]
    if entry["field"] != t.field or [float(v) for v in entry["grid"]] != [float(v) for v in t.grid]:
        raise ValueError(
            f"the frozen tuning of {t.key!r} was made on {entry['field']} over {entry['grid']}, but the "
            f"protocol now tunes {t.field} over {list(t.grid)}: run `bnpaper tune --only {t.key}`"
        )
    return entry


def registry() -> dict[str, Tuning]:
    """Every tuning the book's experiments declare (their module-level TUNINGS)."""
    from bnpaper.experiments import modules

    out: dict[str, Tuning] = {}
    for mod in modules():
        for t in getattr(mod, "TUNINGS", ()):
            if t.key in out:
                raise ValueError(f"tuning key {t.key!r} declared twice")
            out[t.key] = t
    return out


def freeze(keys: list[str] | None = None, data_dir: str = "", device: str = "cpu") -> dict:
    """Tune (quick settings) and write the choices into the frozen file, keeping the other entries."""
    reg = registry()
    unknown = sorted(set(keys or ()) - set(reg))
    if unknown:
        raise KeyError(f"unknown tuning {', '.join(unknown)}; known: {', '.join(reg)}")
    frozen = read_frozen()
    for key in keys or list(reg):
        frozen[key] = tune(reg[key], FROZEN_PROFILE, data_dir, device)
        write_json_atomic(frozen_path(), dict(sorted(frozen.items())))
    return frozen
