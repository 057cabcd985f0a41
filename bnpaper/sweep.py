"""`bnpaper run`: one of the book's networks, any of its settings changed, over N seeds, with intervals.

    bnpaper run mlp --set norm=layer steps=2000 --seeds 10
    bnpaper run convnet --seeds 10 --compare norm=batch,group

Every run goes through the multi-run engine and the store (`engine.trained_many`: seeds batched,
results cached by config and source), so repeating a command retrains nothing. It prints, per arm,
the mean final validation and test accuracy with 95% intervals (Student t over seeds) and n, and with
--compare the paired difference of the second arm minus the first (seeds shared: the same
initializations and batch orders). Every key and value is checked, and the networks built once,
before anything trains; a wrong one is named with the valid choices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path

from bnpaper.errors import BnpaperError
from bnpaper.protocol import Estimate, one_sample_t, paired_t
from bnpaper.train import TrainConfig, build_model


def _presets() -> dict[str, dict]:
    """The book's networks with the settings their chapters use (rates: the quick profile's tuned)."""
    from bnpaper import tuning

    frozen = tuning.read_frozen("quick")
    lr = lambda key, default: frozen.get(key, {}).get("value", default)  # noqa: E731
    return {
        "mlp": {  # the Sec. 4.1 network of Figure 1 with BN, as chapter 09 trains it
            "model": "mlp",
            "hidden": [100, 100, 100],
            "activation": "sigmoid",
            "bn": True,
            "batch_size": 60,
            "steps": 1000,
            "eval_every": 100,
            "init_std": 0.1,
            "lr": lr("ics/bn", 0.64),
            "final_train_acc": False,
        },
        "convnet": {"model": "convnet", "bn": True, "steps": 250, "eval_every": 50, "final_train_acc": False},
        "inception": {
            "model": "inception",
            "bn": True,
            "init": "he",
            "batch_size": 32,
            "steps": 500,
            "eval_every": 100,
        },
    }


PRESETS = ("mlp", "convnet", "inception")
FIXED = ("seed",)  # set by --seeds


class SweepError(BnpaperError, ValueError):
    """A bad experiment name, key or value: raised before anything trains."""


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in FIXED}


def parse_value(key: str, text: str):
    """A TrainConfig field's value from the command line, by the field's type."""
    fields = _fields()
    if key not in fields:
        raise SweepError(f"unknown key {key!r}; valid keys: {', '.join(sorted(fields))}")
    hint = typing.get_type_hints(TrainConfig)[key]
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint == (float | None):
            return None if text.lower() == "none" else float(text)
        if hint == list[int]:
            return [int(v) for v in text.split(",") if v]
        return text
    except ValueError:
        name = getattr(hint, "__name__", str(hint))
        raise SweepError(f"{key}={text!r}: expected {name}") from None


def parse_settings(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"--set takes key=value, got {item!r}")
        key, text = item.split("=", 1)
        out[key.strip()] = parse_value(key.strip(), text.strip())
    return out


def parse_compare(item: str | None) -> tuple[str, list] | None:
    if item is None:
        return None
    if "=" not in item or "," not in item.split("=", 1)[1]:
        raise SweepError(f"--compare takes key=a,b (two values of one key), got {item!r}")
    key, text = item.split("=", 1)
    values = [parse_value(key.strip(), v.strip()) for v in text.split(",")]
    if len(values) != 2:
        raise SweepError(f"--compare takes exactly two values, got {len(values)} in {item!r}")
    return key.strip(), values


def plan(experiment: str, settings: dict, seeds: int, compare=None) -> dict[str, list[TrainConfig]]:
    """The arms (label -> one config per seed), validated: each network is built once here."""
    presets = _presets()
    if experiment not in presets:
        raise SweepError(f"unknown experiment {experiment!r}; choose one of {', '.join(PRESETS)}")
    if not 1 <= seeds <= 1000:
        raise SweepError(f"--seeds must be between 1 and 1000, got {seeds}")
    base = {**presets[experiment], **settings}
    arms = {}
    variants = [(None, None)] if compare is None else [(compare[0], v) for v in compare[1]]
    for key, value in variants:
        fields = dict(base, **({key: value} if key else {}))
        label = f"{key}={value}" if key else experiment
        try:
            cfg = TrainConfig(**fields)
            build_model(cfg)  # a wrong norm, width or split fails here, before training
        except (ValueError, TypeError) as e:
            raise SweepError(f"{label}: {e}") from None
        arms[label] = [dataclasses.replace(cfg, seed=s) for s in range(seeds)]
    return arms


def summarize(values: list[float | None]) -> Estimate:
    return one_sample_t(values)


def run(experiment: str, settings: dict, seeds: int, compare=None, desc: str = "run") -> dict:
    """Train every arm (engine + store) and return the per-seed results with their intervals."""
    from bnpaper.engine import trained_many

    arms = plan(experiment, settings, seeds, compare)
    out = {"experiment": experiment, "settings": settings, "seeds": seeds, "arms": {}}
    for label, cfgs in arms.items():
        hists = [h for _, h in trained_many(cfgs, desc=f"{desc} {label}")]
        val = [h["final_val_acc"] for h in hists]
        test = [h["final_test_acc"] for h in hists]
        out["arms"][label] = {
            "config": dataclasses.asdict(cfgs[0]) | {"seed": None},
            "final_val_acc": val,
            "final_test_acc": test,
            "diverged": sum(bool(h["diverged"]) for h in hists),
            "val": dataclasses.asdict(summarize(val)),
            "test": dataclasses.asdict(summarize(test)),
        }
    if compare is not None:
        (la, a), (lb, b) = out["arms"].items()
        out["difference"] = {
            "of": f"{lb} minus {la}",
            "val": dataclasses.asdict(paired_t(b["final_val_acc"], a["final_val_acc"])),
            "test": dataclasses.asdict(paired_t(b["final_test_acc"], a["final_test_acc"])),
        }
    return out


def _ci(e: dict) -> str:
    return f"{e['value']:.4f} [{e['lo']:.4f}, {e['hi']:.4f}]"


def format_table(res: dict) -> str:
    head = f"{'arm':<24} {'n':>3}  {'validation accuracy [95%]':<28} {'test accuracy [95%]':<28} diverged"
    lines = [head, "-" * len(head)]
    for label, a in res["arms"].items():
        lines.append(
            f"{label:<24} {a['val']['n']:>3}  {_ci(a['val']):<28} {_ci(a['test']):<28} {a['diverged']}"
        )
    if "difference" in res:
        d = res["difference"]
        lines.append(f"paired difference, {d['of']} (n = {d['val']['n']}):")
        lines.append(f"  validation {_ci(d['val'])}   test {_ci(d['test'])}")
    return "\n".join(lines)


def main(experiment: str, sets: list[str], seeds: int, compare: str | None, out: Path | None) -> dict:
    settings = parse_settings(sets)
    cmp = parse_compare(compare)
    plan(experiment, settings, seeds, cmp)  # every error before any training
    res = run(experiment, settings, seeds, cmp)
    print(format_table(res))
    if out is None:
        key = hashlib.sha256(
            json.dumps([experiment, settings, seeds, compare], sort_keys=True, default=str).encode()
        )
        out = Path("_build") / "runs" / f"{experiment}-{key.hexdigest()[:10]}.json"
    from bnpaper.cache import write_json_atomic

    write_json_atomic(Path(out), res)
    print(f"wrote {out}")
    return res


__all__ = ["PRESETS", "SweepError", "main", "parse_settings", "plan", "run"]
