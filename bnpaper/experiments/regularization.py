"""Chapter "BN regularizes the model" (paper Sec. 3.4, source text 4.2).

nondeterminism  one training example's logits and one hidden unit's BN output, recomputed with
                many different mini-batch companions, in each of the trained BN nets: their spread
                as a function of m (training mode), and the same example in eval mode
dropout_grid    {no BN, BN} x {Dropout 0, 0.5}, each cell at its OWN tuned learning rate (issue 11,
                item 10: regularization is confounded with optimization): train / validation / test
                accuracy and the training loss per seed, so that a higher test accuracy can be told
                from faster fitting
frozen_runs     "BN with frozen statistics": the BN net trained with mini-batch statistics for a
                warm-up, then normalizing with the fixed running statistics (no mini-batch noise
                from then on), to isolate BN's noise from the rest of what BN does

The claims (`CLAIMS`) and the four tuned cells (`TUNINGS`) live here; the settings per profile in
`bnpaper.profiles.SETTINGS["regularization"]`.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field, replace
from functools import partial

import torch

from bnpaper import data as data_mod
from bnpaper import functional as F
from bnpaper import profiles, protocol, tuning
from bnpaper.engine import map_tasks, trained, trained_many
from bnpaper.experiments import conv
from bnpaper.inference import bn_layers
from bnpaper.layers import BatchNorm
from bnpaper.models import Dropout
from bnpaper.protocol import confirmatory
from bnpaper.text import Catalog
from bnpaper.train import TrainConfig
from bnpaper.train import train as train_loop

T = Catalog(__name__)  # this experiment's English and Arabic text: regularization.yml

settings = partial(profiles.settings, "regularization")  # (profile, steps=0) -> this experiment's numbers

# ----------------------------------------------------------------------------- cells and tuning

CELLS: dict[str, tuple[bool, float]] = {  # name -> (bn, dropout rate)
    "no_bn-d0": (False, 0.0),
    "no_bn-d0.5": (False, 0.5),
    "bn-d0": (True, 0.0),
    "bn-d0.5": (True, 0.5),
}
FROZEN = "bn-frozen"  # the fifth arm: BN with its statistics frozen after a warm-up
LR_GRID = (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8)  # a 2x grid, the same for every cell


def cell_config(
    cell: str, profile: str, seed: int = 0, device: str = "cpu", data_dir: str = "", **kw
) -> TrainConfig:
    """The conv net of chapters 02-04 (`conv.base_config`) as one cell of the grid, with this
    chapter's steps (profiles.SETTINGS["regularization"]); lr is the tuned one, set by the caller."""
    bn, p = CELLS[cell]
    s = settings(profile)
    fields = dict(steps=s["steps"], eval_every=s["eval_every"], bn=bn, dropout=p, seed=seed)
    fields.update(kw)
    return conv.base_config(profile, device=device, data_dir=data_dir, **fields)


def _base_fn(cell: str):
    def base(profile: str, seed: int) -> TrainConfig:
        return cell_config(cell, profile, seed)

    base.__name__ = f"base_{cell.replace('-', '_').replace('.', '')}"
    return base


def _frozen_trainer(cfgs: list[TrainConfig], profile: str) -> list[dict]:
    """Tuning runs of the frozen-statistics arm (its own learning rate: stale statistics may not
    tolerate BN's), spread over the worker processes."""
    warmup = settings(profile)["warmup"]
    return map_tasks(train_frozen, [(c, warmup) for c in cfgs])


TUNINGS: tuple[tuning.Tuning, ...] = tuple(
    tuning.Tuning(key=f"regularization/{cell}", field="lr", grid=LR_GRID, base=_base_fn(cell))
    for cell in CELLS
) + (tuning.Tuning(f"regularization/{FROZEN}", "lr", LR_GRID, _base_fn("bn-d0"), trainer=_frozen_trainer),)
TUNING_BY_CELL = {t.key.split("/", 1)[1]: t for t in TUNINGS}


# ----------------------------------------------------------------------------- BN with frozen statistics


class FrozenStatsBatchNorm(BatchNorm):
    """bnpaper's BatchNorm that always normalizes with its stored running statistics (Alg. 2's
    affine map), in training mode too, and never updates them: no mini-batch statistics, so no
    mini-batch noise. gamma and beta still learn (the gradient flows through the fixed affine map).

    A module becomes one by `freeze_batch_statistics` (its class is swapped in place: same
    parameters, same buffers, the optimizer keeps them). Because the behaviour is the class's, not
    the train / eval flag's, `train.accuracy` toggling model.train() / model.eval() cannot undo it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        F.check_input(x, self.num_features, training=False)
        return self._inference(x)


def freeze_batch_statistics(model: torch.nn.Module) -> int:
    """Make every bnpaper BatchNorm of model a FrozenStatsBatchNorm; returns how many were frozen."""
    n = 0
    for mod in model.modules():
        if isinstance(mod, BatchNorm) and not isinstance(mod, FrozenStatsBatchNorm):
            if not mod.track_running_stats:
                raise ValueError("freezing needs running statistics (track_running_stats=True)")
            mod.__class__ = FrozenStatsBatchNorm
            n += 1
    return n


def train_frozen(cfg: TrainConfig, warmup: int) -> dict:
    """train.train with mini-batch statistics for `warmup` steps, then frozen statistics (the
    running averages at that step). Returns the history (with frozen_at and frozen_layers)."""
    if not cfg.bn:
        raise ValueError("the frozen-statistics arm is a BN network (bn=True)")
    if not 1 <= warmup < cfg.steps:
        raise ValueError(f"warmup must be in [1, steps), got {warmup} with {cfg.steps} steps")
    frozen = {}

    def hook(step: int, model: torch.nn.Module) -> None:
        if step == warmup:
            frozen["layers"] = freeze_batch_statistics(model)

    _, hist = train_loop(cfg, on_step=hook, desc="convnet bn, frozen statistics")
    hist = {k: v for k, v in hist.items() if not k.startswith("_")}
    hist["frozen_at"] = warmup if frozen else None  # None: diverged during the warm-up
    hist["frozen_layers"] = frozen.get("layers", 0)
    return hist


# ----------------------------------------------------------------------------- nondeterminism


@dataclass
class NondeterminismConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # one trained BN conv net
    ms: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128])
    draws: int = 200  # different sets of companions per m
    example: int = 0  # index of the training example followed
    unit: int = 0  # hidden unit of the last BN layer followed
    seed: int = 0  # which companions (the same draws for every net)


def _bn_train_mode(net: torch.nn.Module) -> None:
    """Training mode for BN (mini-batch statistics), eval mode for dropout (isolate BN's noise)."""
    net.train()
    for mod in net.modules():
        if isinstance(mod, (torch.nn.Dropout, Dropout)):
            mod.eval()


def nondeterminism(cfg: NondeterminismConfig) -> dict:
    """Std over draws of the example's outputs when its m - 1 companions change (training mode),
    and the largest change of its logits over the same draws in eval mode (0 if deterministic)."""
    model, _ = trained(replace(cfg.train, bn=True), desc="convnet bn")  # trains (with grad) if not stored
    return _spread(model, cfg)


@torch.no_grad()
def _spread(model: torch.nn.Module, cfg: NondeterminismConfig) -> dict:
    net = copy.deepcopy(model)  # its training-mode calls below move its running statistics
    ref = copy.deepcopy(model).eval()  # so eval mode is read from an untouched copy
    last_bn = list(bn_layers(net).values())[-1]
    captured = {}
    last_bn.register_forward_hook(lambda mod, inp, out: captured.__setitem__("y", out[0, cfg.unit].item()))
    ds = data_mod.load(cfg.train.data_dir)
    dev = next(net.parameters()).device
    x = ds.x_train.to(dev)
    others = torch.cat([torch.arange(cfg.example), torch.arange(cfg.example + 1, len(x))])
    g = torch.Generator().manual_seed(cfg.seed)
    out: dict = {}
    eval_diff = 0.0
    for m in cfg.ms:
        logits, hidden, eval_logits = [], [], []
        for _ in range(cfg.draws):
            comp = others[torch.randperm(len(others), generator=g)[: m - 1]]
            batch = torch.cat([x[cfg.example : cfg.example + 1], x[comp.to(dev)]])  # the example first
            _bn_train_mode(net)  # BN with the mini-batch's statistics, dropout off
            logits.append(net(batch)[0])
            hidden.append(captured["y"])
            eval_logits.append(ref(batch)[0])  # Alg. 2: the same example and companions, fixed statistics
        L = torch.stack(logits)  # (draws, 10)
        E = torch.stack(eval_logits)
        eval_diff = max(eval_diff, (E - E[0]).abs().max().item())
        out[str(m)] = {
            "logit_std": L.std(0).mean().item(),  # per-logit std over draws, averaged over the 10 logits
            "hidden_std": statistics.stdev(hidden),
            "pred_changes": int((L.argmax(1) != L.argmax(1).mode().values).sum().item()),
        }
    out["eval_mode_max_diff"] = eval_diff
    out["seed"] = cfg.train.seed
    return out


@dataclass
class NondeterminismManyConfig:
    nets: list[TrainConfig] = field(default_factory=list)  # the trained BN nets (one per evaluation seed)
    ms: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128])
    draws: int = 200
    example: int = 0
    unit: int = 0
    seed: int = 0


def nondeterminism_many(cfg: NondeterminismManyConfig) -> list[dict]:
    """`nondeterminism` for every net, spread over the worker processes."""
    one = [NondeterminismConfig(n, cfg.ms, cfg.draws, cfg.example, cfg.unit, cfg.seed) for n in cfg.nets]
    return map_tasks(nondeterminism, [(c,) for c in one])


def nondeterminism_measurement(per_net: list[dict], ms: list[int]) -> dict:
    """The claim's measurement: per-net logit std at the smallest and the largest m, eval diffs."""
    small, large = str(min(ms)), str(max(ms))
    return {
        "m_small": min(ms),
        "m_large": max(ms),
        "std_small": [r[small]["logit_std"] for r in per_net],
        "std_large": [r[large]["logit_std"] for r in per_net],
        "eval_diff": [r["eval_mode_max_diff"] for r in per_net],
    }


# ----------------------------------------------------------------------------- the grid and the frozen arm


@dataclass
class GridConfig:
    base: TrainConfig = field(default_factory=TrainConfig)  # everything but bn, dropout, lr and seed
    lrs: dict[str, float] = field(default_factory=lambda: {c: 0.05 for c in CELLS})  # tuned, per cell
    seeds: list[int] = field(default_factory=lambda: [0, 1])

    def config(self, cell: str, seed: int) -> TrainConfig:
        bn, p = CELLS[cell]
        return replace(self.base, bn=bn, dropout=p, lr=self.lrs[cell], seed=seed)


def _row(seed: int, h: dict) -> dict:
    """One run's numbers: accuracies (None if diverged), the training loss and the curves."""
    ok = not h["diverged"]
    return {
        "seed": seed,
        "diverged": h["diverged"],
        "train_acc": h["final_train_acc"] if ok else None,
        "val_acc": h["final_val_acc"] if ok else None,
        "test_acc": h["final_test_acc"] if ok else None,
        "gap": h["final_train_acc"] - h["final_test_acc"] if ok else None,
        "final_loss": h["loss"][-1] if ok and h["loss"] else None,  # training loss, last evaluation window
        "eval_steps": h["eval_steps"],
        "loss": h["loss"],
        "val_curve": h["val_acc"],
    }


def dropout_grid(cfg: GridConfig) -> dict[str, list[dict]]:
    """Train every cell for every seed (each cell at its own lr); rows by cell."""
    cells = [(c, s) for c in CELLS for s in cfg.seeds]
    done = trained_many([cfg.config(c, s) for c, s in cells], desc="dropout grid")
    runs: dict[str, list] = {c: [] for c in CELLS}
    for (c, s), (_, h) in zip(cells, done):
        runs[c].append(_row(s, h))
    return runs


@dataclass
class FrozenConfig:
    train: TrainConfig = field(default_factory=TrainConfig)  # the BN cell's config (bn-d0, its tuned lr)
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    warmup: int = 5  # steps with mini-batch statistics before they are frozen


def frozen_runs(cfg: FrozenConfig) -> list[dict]:
    """The frozen-statistics arm, one run per seed, spread over the worker processes."""
    hists = map_tasks(train_frozen, [(replace(cfg.train, seed=s), cfg.warmup) for s in cfg.seeds])
    return [
        {**_row(s, h), "frozen_at": h["frozen_at"], "frozen_layers": h["frozen_layers"]}
        for s, h in zip(cfg.seeds, hists)
    ]


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean and std over seeds of every per-run number, per arm (diverged runs left out, counted)."""
    out = {}
    for arm, rows in runs.items():
        out[arm] = {"n": len(rows), "diverged": sum(r["diverged"] for r in rows)}
        for metric in ("train_acc", "val_acc", "test_acc", "gap", "final_loss"):
            vals = [r[metric] for r in rows if r[metric] is not None]
            out[arm][metric] = (
                statistics.fmean(vals) if vals else math.nan,
                statistics.stdev(vals) if len(vals) > 1 else 0.0,
            )
    return out


def per_seed(runs: dict[str, list[dict]], metric: str) -> dict[str, list]:
    """{arm: [metric per seed]} in seed order (None where a run diverged): what the claims read."""
    return {arm: [r[metric] for r in sorted(rows, key=lambda r: r["seed"])] for arm, rows in runs.items()}


def grid_measurement(runs: dict[str, list[dict]]) -> dict:
    """The measurement the three training claims read: per-seed test accuracy per arm (paired by
    seed: same initialization and batch order), with train accuracy and training loss beside it."""
    return {
        "seeds": [r["seed"] for r in sorted(next(iter(runs.values())), key=lambda r: r["seed"])],
        "test_acc": per_seed(runs, "test_acc"),
        "train_acc": per_seed(runs, "train_acc"),
        "final_loss": per_seed(runs, "final_loss"),
    }


# ----------------------------------------------------------------------------- estimates (pure)


def estimate_nondeterminism(m: dict) -> protocol.Estimate:
    """Mean over nets of ln(std at the smallest m / std at the largest m), Student t.

    Eval-mode determinism is the measurement's precondition: if any net's eval-mode output moved
    with its companions (eval_diff != 0 exactly), the spread in training mode cannot be credited
    to BN's mini-batch statistics, so the statistic is NaN (inconclusive). A net whose std is 0 at
    both m adds ln 1 = 0 (no decrease); a single zero std (an infinite log ratio, which no t
    interval can hold) makes the statistic NaN too.
    """
    small, large, diffs = m["std_small"], m["std_large"], m["eval_diff"]
    if len(small) != len(large) or len(small) != len(diffs):
        raise ValueError("std_small, std_large and eval_diff need one value per net")
    method = "t"
    if any(d is None or d != 0 for d in diffs):
        return protocol.Estimate(
            math.nan, math.nan, math.nan, len(small), method, note={"eval_mode_nondeterministic": True}
        )
    logs = []
    for a, b in zip(small, large):
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0:
            raise ValueError(f"a standard deviation is a finite number >= 0, got {a!r} and {b!r}")
        if a == 0 and b == 0:
            logs.append(0.0)  # no spread at either m: no decrease
        elif a == 0 or b == 0:  # an infinite log ratio: no t interval can hold it
            return protocol.Estimate(
                math.nan, math.nan, math.nan, len(small), method, note={"zero_std": True}
            )
        else:
            logs.append(math.log(a / b))
    return protocol.one_sample_t(logs)


def estimate_reduces_dropout(m: dict) -> protocol.Estimate:
    """Test accuracy of BN without Dropout minus BN with Dropout, paired by seed (for TOST)."""
    t = m["test_acc"]
    return protocol.paired_t(t["bn-d0"], t["bn-d0.5"])


def estimate_generalization(m: dict) -> protocol.Estimate:
    """Test accuracy of BN minus no BN (both without Dropout), paired by seed."""
    t = m["test_acc"]
    return protocol.paired_t(t["bn-d0"], t["no_bn-d0"])


def estimate_noise(m: dict) -> protocol.Estimate:
    """Test accuracy of BN (mini-batch statistics) minus BN with frozen statistics, paired by seed."""
    t = m["test_acc"]
    return protocol.paired_t(t["bn-d0"], t[FROZEN])


def paired(m: dict, metric: str, a: str, b: str) -> protocol.Estimate:
    """A descriptive paired difference (a - b) of any recorded per-seed metric (no claim)."""
    return protocol.paired_t(m[metric][a], m[metric][b])


# ----------------------------------------------------------------------------- claims

FIXED = "2026-11-25"
_TUNED = T("tuned", lr_grid_list=", ".join(f"{v:g}" for v in LR_GRID))

CLAIMS: tuple[protocol.Claim, ...] = (
    protocol.Claim(
        id="nondeterministic-output",
        **T.fields("nondeterministic-output.claim", "en", "ar"),
        where="paper 3.4",
        paper="-",
        chapter="04_regularization",
        label="sec-reg-nondeterminism",
        protocol=protocol.Protocol(
            version=2,
            fixed=FIXED,
            arms=T("nondeterministic-output.arms"),
            tuned=_TUNED,
            statistic=T("nondeterministic-output.statistic"),
            interval="t",
            kind="greater",
            margin=0.0,
            scale="difference",
            changes=T("nondeterministic-output.changes"),
        ),
        estimate=estimate_nondeterminism,
    ),
    protocol.Claim(
        id="reduces-dropout",
        **T.fields("reduces-dropout.claim", "en", "ar"),
        where="paper 3.4",
        paper="-",
        chapter="04_regularization",
        label="sec-reg-dropout",
        protocol=protocol.Protocol(
            version=2,
            fixed=FIXED,
            arms=T("reduces-dropout.arms"),
            tuned=_TUNED,
            statistic=T("reduces-dropout.statistic"),
            interval="paired t",
            kind="equivalent",
            margin=0.005,
            scale="difference",
            changes=T("reduces-dropout.changes"),
        ),
        estimate=estimate_reduces_dropout,
    ),
    protocol.Claim(
        id="improves-generalization",
        **T.fields("improves-generalization.claim", "en", "ar"),
        where="paper 3.4",
        paper="-",
        chapter="04_regularization",
        label="sec-reg-dropout",
        protocol=protocol.Protocol(
            version=2,
            fixed=FIXED,
            arms=T("improves-generalization.arms"),
            tuned=_TUNED,
            statistic=T("improves-generalization.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            scale="difference",
            changes=T("improves-generalization.changes"),
        ),
        estimate=estimate_generalization,
    ),
    protocol.Claim(
        id="noise-regularizes",
        **T.fields("noise-regularizes.claim", "en", "ar"),
        where="paper 3.4",
        paper="-",
        chapter="04_regularization",
        label="sec-reg-frozen",
        protocol=protocol.Protocol(
            version=2,
            fixed=FIXED,
            arms=T("noise-regularizes.arms"),
            tuned=_TUNED,
            statistic=T("noise-regularizes.statistic"),
            interval="paired t",
            kind="greater",
            margin=0.0,
            scale="difference",
            changes=T("noise-regularizes.changes"),
        ),
        estimate=estimate_noise,
    ),
)

# The confirmatory version of every claim above (bnpaper.protocol.confirmatory): each claim's
# smallest effect of interest, and the statistics that are true by construction (checks).
CLAIMS = confirmatory(
    CLAIMS,
    sesoi={
        "improves-generalization": (0.005, "accuracy"),
        "noise-regularizes": (0.005, "accuracy"),
    },
    checks={
        "nondeterministic-output": T("nondeterministic-output.check_reason"),
    },
)
CLAIM_BY_ID = {c.id: c for c in CLAIMS}


def sign_key(est: protocol.Estimate) -> str:
    """Where a descriptive difference's 95% interval lies relative to 0, as a glossary label key
    (the chapter's sentences about train accuracy and loss are glued from this, never typed)."""
    return {"holds": "sign_above", "does_not_hold": "sign_below"}.get(
        protocol.decide(est, "greater", 0.0), "sign_contains"
    )
