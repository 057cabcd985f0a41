"""Chapter "The accelerated-BN recipe at small scale" (paper Sec. 4.2, Figures 2 and 3).

The paper's models, on a small Inception-style net (bnpaper.models.inception_net):

  Baseline       no BN, dropout, L2 weight decay wd, learning rate lr, exponential decay over the run
  BN-Baseline    the same with BN before every nonlinearity
  BN-x5          BN with the changes of Sec. 4.2.1 that apply here: dropout removed, L2 cut 5x,
                 learning-rate decay 6x faster, and 5x the learning rate
  BN-x30         the same with 30x the learning rate
  BN-x5-Sigmoid  BN-x5 with sigmoid instead of ReLU
  Inception-Sigmoid  Baseline with sigmoid instead of ReLU (the paper: never above 1/1000 accuracy)

Changes of Sec. 4.2.1 that do not apply: removing Local Response Normalization (the net has none),
shuffling more thoroughly (every epoch is already a fresh permutation), fewer photometric
distortions (no data augmentation is used).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bnpaper.engine import trained_many
from bnpaper.stats import mean_std
from bnpaper.train import TrainConfig

PROFILES = {
    "smoke": {"steps": 20, "seeds": 2, "eval_every": 5},
    "quick": {"steps": 400, "seeds": 3, "eval_every": 20},
    "paper": {"steps": 3000, "seeds": 3, "eval_every": 100},
}
MODELS = ("Baseline", "BN-Baseline", "BN-x5", "BN-x30", "BN-x5-Sigmoid", "Inception-Sigmoid")


@dataclass
class RecipeConfig:
    steps: int = 400  # SGD steps per run
    eval_every: int = 50  # steps between validation (test-set) evaluations
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    lr: float = 0.03  # Baseline's learning rate (the paper's Inception used 0.0015 on ImageNet)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # Baseline's L2 (Sec. 4.2.1 cuts it 5x for the accelerated models)
    dropout: float = 0.4  # Baseline's dropout before the classifier (GoogLeNet's 40%)
    decay_total: float = 0.1  # Baseline's lr falls to this fraction over the run (exponential)
    batch_size: int = 32  # the paper's mini-batch size in Sec. 4.2
    data_dir: str = ""
    device: str = "cpu"


def model_config(cfg: RecipeConfig, name: str, seed: int) -> TrainConfig:
    per_step = cfg.decay_total ** (1 / cfg.steps)  # Baseline: lr * decay_total at the end
    base = TrainConfig(
        model="inception",
        bn=False,
        activation="relu",
        dropout=cfg.dropout,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        lr_decay_every=1,
        lr_decay_factor=per_step,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        eval_every=cfg.eval_every,
        seed=seed,
        data_dir=cfg.data_dir,
        device=cfg.device,
        init="he",
        final_train_acc=False,
    )
    accelerated = dict(
        bn=True, dropout=0.0, weight_decay=cfg.weight_decay / 5, lr_decay_factor=per_step**6
    )  # Sec. 4.2.1
    if name == "Baseline":
        return base
    if name == "BN-Baseline":
        return replace(base, bn=True)
    if name == "BN-x5":
        return replace(base, **accelerated, lr=5 * cfg.lr)
    if name == "BN-x30":
        return replace(base, **accelerated, lr=30 * cfg.lr)
    if name == "BN-x5-Sigmoid":
        return replace(base, **accelerated, lr=5 * cfg.lr, activation="sigmoid")
    if name == "Inception-Sigmoid":
        return replace(base, activation="sigmoid")
    raise ValueError(f"model must be one of {', '.join(MODELS)}, got {name!r}")


RECORDED = ("eval_steps", "test_acc", "final_test_acc", "diverged", "diverged_at", "train_seconds")


def run(cfg: RecipeConfig) -> dict:
    """Validation accuracy curves of every model and seed."""
    cells = [(name, s) for name in MODELS for s in cfg.seeds]
    done = trained_many([model_config(cfg, name, s) for name, s in cells], desc="inception recipe")
    out: dict[str, list] = {}
    for (name, _s), (_, h) in zip(cells, done):
        out.setdefault(name, []).append({k: h[k] for k in RECORDED})
    return out


def summarize(result: dict) -> dict:
    """Figure 3's columns: steps to reach the Baseline's best accuracy, and max accuracy.

    The target is the mean over seeds of the Baseline's best validation accuracy. A run that never
    reaches it counts as "never"; steps are averaged over the runs that do.
    """
    target = mean_std([max(r["test_acc"]) for r in result["Baseline"] if r["test_acc"]])[0]
    rows = {}
    for name, runs in result.items():
        reached = []
        for r in runs:
            hit = next((s for s, a in zip(r["eval_steps"], r["test_acc"]) if a >= target), None)
            reached.append(hit)
        steps = [s for s in reached if s is not None]
        rows[name] = {
            "steps_to_target": mean_std(steps) if steps else (None, None),
            "reached": len(steps),
            "runs": len(runs),
            "max_accuracy": mean_std([max(r["test_acc"]) if r["test_acc"] else None for r in runs]),
            "diverged": sum(r["diverged"] for r in runs),
        }
    base_steps = rows["Baseline"]["steps_to_target"][0]
    for row in rows.values():
        s = row["steps_to_target"][0]
        row["speedup_vs_baseline"] = (base_steps / s) if (s and base_steps) else None
    return {"target": target, "rows": rows}
