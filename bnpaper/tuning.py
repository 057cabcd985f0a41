"""Each arm tuned on its own grid, on validation data, with tuning seeds disjoint from evaluation.

A `Tuning` names one arm's hyperparameter and grid; `tune` trains every grid value on the tuning
seeds (`bnpaper.profiles.tuning_seeds`, the test set never read: `read_test=False`) and picks the
value with the highest mean final validation accuracy (a diverged run scores 0; ties go to the
smaller value). Every profile reads the choice frozen with its provenance (the command, the data,
the seeds, the grid, the run length, every score and the source hash that chose it), so a book
build evaluates without re-tuning: smoke and quick read bnpaper/data/tuned.json (tuned at the quick
profile's settings), paper reads bnpaper/data/tuned-paper.json (tuned at the paper's settings).

`bnpaper tune [--profile quick|paper]` (re)writes a frozen file. Tuning at the paper's settings
trains every grid value at the paper's run lengths (hours on 2 cores): it is a step of its own,
never hidden inside a book build.
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
from bnpaper.errors import ConfigError, UnknownNameError
from bnpaper.train import TrainConfig

FROZEN_FILES = {"quick": "tuned.json", "paper": "tuned-paper.json"}
CHANCE = 0.1  # ten digit classes: the validation accuracy of a network that learned nothing
TRAINS = 2 * CHANCE  # an arm trains on its grid if some value's mean validation accuracy reaches this


def trains_on_grid(entry: dict) -> bool:
    """Whether any value of a frozen tuning's grid trained: its mean final validation accuracy over
    the tuning seeds reached TRAINS (twice chance). An arm that trains nowhere has no tuned value,
    only the grid value that was least bad; the book says so instead of calling it tuned."""
    return max(entry["scores"].values()) >= TRAINS


def frozen_profile(profile: str) -> str:
    """The profile whose settings the frozen values of `profile` were tuned at (smoke reads quick's)."""
    profiles.settings("figure1", profile)  # checks the name
    return "paper" if profile == "paper" else "quick"


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
            raise ConfigError(
                f"tuning {self.key}: the grid must hold >= 2 increasing values, got {self.grid}"
            )


def frozen_path(profile: str = "quick") -> Path:
    name = FROZEN_FILES[frozen_profile(profile)]
    return Path(str(resources.files("bnpaper").joinpath(f"data/{name}")))


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
        "command": f"bnpaper tune --profile {profile} --only {t.key}",
        "at_grid_edge": best in (t.grid[0], t.grid[-1]),
    }


def read_frozen(profile: str = "quick") -> dict:
    path = frozen_path(profile)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path} is not valid JSON ({e}); restore it with git or run `bnpaper tune --profile "
            f"{frozen_profile(profile)}`"
        ) from e


def tuned(t: Tuning, profile: str, data_dir: str = "", device: str = "cpu") -> dict:
    """The tuned value with its provenance, frozen at the settings of `frozen_profile(profile)`;
    a missing or stale entry (another grid, field or run length) names the command that re-tunes."""
    fp = frozen_profile(profile)
    frozen = read_frozen(fp)
    command = f"bnpaper tune --profile {fp} --only {t.key}"
    if t.key not in frozen:
        raise UnknownNameError(
            f"no frozen tuning for {t.key!r} in {frozen_path(fp)}; run `{command}` "
            "(it trains the grid on the tuning seeds and writes the choice with its provenance)"
        )
    entry = frozen[t.key]
    if entry["field"] != t.field or [float(v) for v in entry["grid"]] != [float(v) for v in t.grid]:
        raise ConfigError(
            f"the frozen tuning of {t.key!r} was made on {entry['field']} over {entry['grid']}, but the "
            f"protocol now tunes {t.field} over {list(t.grid)}: run `{command}`"
        )
    steps = t.base(fp, profiles.tuning_seeds(fp)[0]).steps
    if entry.get("steps") != steps:
        raise ConfigError(
            f"the frozen tuning of {t.key!r} was made with runs of {entry.get('steps')} steps, but the "
            f"{fp} profile now trains {steps}: run `{command}`"
        )
    return entry


def missing(profile: str) -> list[str]:
    """The declared tunings that `profile` cannot read from its frozen file (missing or stale)."""
    out = []
    for key, t in registry().items():
        try:
            tuned(t, profile)
        except (KeyError, ValueError):
            out.append(key)
    return out


def registry() -> dict[str, Tuning]:
    """Every tuning the book's experiments declare (their module-level TUNINGS)."""
    from bnpaper.experiments import modules

    out: dict[str, Tuning] = {}
    for mod in modules():
        for t in getattr(mod, "TUNINGS", ()):
            if t.key in out:
                raise ConfigError(f"tuning key {t.key!r} declared twice")
            out[t.key] = t
    return out


def freeze(
    keys: list[str] | None = None, data_dir: str = "", device: str = "cpu", profile: str = "quick"
) -> dict:
    """Tune at `profile`'s settings and write the choices into its frozen file, keeping the others."""
    reg = registry()
    unknown = sorted(set(keys or ()) - set(reg))
    if unknown:
        raise UnknownNameError(f"unknown tuning {', '.join(unknown)}; known: {', '.join(reg)}")
    fp = frozen_profile(profile)
    frozen = read_frozen(fp)
    for key in keys or list(reg):
        frozen[key] = with_history(tune(reg[key], fp, data_dir, device), frozen.get(key))
        write_json_atomic(frozen_path(fp), dict(sorted(frozen.items())))
    return frozen


def with_history(new: dict, old: dict | None) -> dict:
    """The frozen file is append-only: a re-tuned entry keeps every entry it replaces, newest first,
    under "history" (what was chosen, on which grid, scores and seeds, with which source, when)."""
    if old is None:
        return new
    past = [{k: v for k, v in old.items() if k != "history"}, *old.get("history", [])]
    return {**new, "history": past}
