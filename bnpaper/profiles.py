"""Every profile number in one place: seeds, steps, grids, for every experiment of the book.

smoke  seconds, for tests: tiny runs, n = 2, verdicts mean nothing
quick  the default book: n = 10 evaluation seeds for every claim that trains, tuned
       hyperparameters read from the frozen file bnpaper/data/tuned.json (never re-tuned)
paper  twice the quick run lengths (the paper's own schedules do not fit the one-hour budget of
       a 2-core machine with n = 10 and every arm re-tuned): n = 10, the Inception ablation run, and
       every tuning re-run first (`make paper` = `bnpaper tune --profile paper` + the build)

Evaluation seeds: the confirmatory pass uses EVAL_SEED0, EVAL_SEED0 + 1, ... (500-509). Seeds
0-9 were the evaluation seeds of every build before it: they were seen in pilots and builds while
protocols and tunings were still being written, so they are never used for a verdict again (the
exploratory verdicts of the ledger come from them). Tuning seeds start at TUNING_SEED0; the two
blocks never overlap (`eval_seeds` refuses an overlap).

Shortened runs (a chapter's `steps` parameter): one rule for every experiment, in `settings`.
"""

from __future__ import annotations

from bnpaper.errors import ConfigError, UnknownNameError

PROFILE_NAMES = ("smoke", "quick", "paper")
N_EVAL = {"smoke": 2, "quick": 10, "paper": 10}  # evaluation seeds per arm
N_TUNE = {"smoke": 1, "quick": 3, "paper": 3}  # tuning seeds per grid point
TUNING_SEED0 = 1000
EVAL_SEED0 = 500  # the confirmatory pass: seeds no run of this book had used before (see above)
EXPLORATORY_SEEDS = range(0, 10)  # seen before the confirmatory pass: never evaluation seeds again

SETTINGS: dict[str, dict[str, dict]] = {
    "verify": {  # Algorithm 1 and its backward on random batches (no training)
        "smoke": {"seeds": 2},
        "quick": {"seeds": 10},
        "paper": {"seeds": 50},
    },
    "conv": {  # the conv net of Sec. 3.2 / 3.4 (chapters 02, 03, 04); n = N_EVAL nets per arm
        # steps: SGD steps per net (quick: 20 nets x 250 steps fit chapters 02 + 03 in ~80 s on 2 cores);
        # check_seeds: seeds of the float64 checks (no training); repeats: timed fold repeats
        "smoke": {"steps": 20, "eval_every": 10, "repeats": 5, "check_seeds": 10},
        "quick": {"steps": 250, "eval_every": 25, "repeats": 30, "check_seeds": 10},
        "paper": {"steps": 500, "eval_every": 50, "repeats": 100, "check_seeds": 50},
    },
    "population": {  # Algorithm 2 (chapter 03), on the conv nets of "conv"
        # ks / k_seeds: the validation sweep over k (draws of the batches per k), on one net;
        # k_methods: Algorithm 2's k in the claim; ms / examples / sb_seeds: the small-batch runs
        "smoke": {
            "ks": [1, 2, 5],
            "k_seeds": 2,
            "k_methods": 5,
            "ms": [2, 8, 64],
            "examples": 1280,
            "sb_seeds": 2,
        },
        "quick": {
            "ks": [1, 2, 5, 10, 20, 50],
            "k_seeds": 5,
            "k_methods": 50,
            "ms": [2, 4, 8, 16, 64],
            "examples": 3200,
            "sb_seeds": 2,
        },
        "paper": {
            "ks": [1, 2, 5, 10, 20, 50],
            "k_seeds": 10,
            "k_methods": 50,
            "ms": [2, 4, 8, 16, 64],
            "examples": 6400,
            "sb_seeds": 3,
        },
    },
    "regularization": {  # chapter 04: {no BN, BN} x {Dropout 0, 0.5}, each tuned, + BN with frozen statistics
        # steps: SGD steps per run (quick: 5 arms x 10 conv nets must train in about 70 s on 2 cores);
        # warmup: steps with mini-batch statistics before the frozen arm freezes them;
        # draws / ms: companion sets per mini-batch size m for the nondeterminism claim
        "smoke": {"steps": 20, "eval_every": 10, "warmup": 5, "draws": 10, "ms": [2, 8, 64]},
        "quick": {
            "steps": 200,
            "eval_every": 50,
            "warmup": 50,
            "draws": 50,
            "ms": [2, 4, 8, 16, 32, 64, 128],
        },
        "paper": {
            "steps": 400,
            "eval_every": 50,
            "warmup": 100,
            "draws": 100,
            "ms": [2, 4, 8, 16, 32, 64, 128],
        },
    },
    "learning_rate": {  # chapter 05
        "smoke": {
            "growth_steps": 20,
            "growth_lr": 0.5,
            "track_every": 4,
            "sweep_steps": 10,
            "lr_exponents": [-2, 2, 6],
            "depth": 4,
            "sigmoid_steps": 20,
            "jac_batch": 4,
        },
        "quick": {
            "growth_steps": 500,
            "growth_lr": 0.5,
            "track_every": 25,
            "sweep_steps": 300,
            "lr_exponents": list(range(-4, 7)),  # 2 ** (k / 2): 1/4 .. 8
            "depth": 10,
            "sigmoid_steps": 1000,
            "jac_batch": 8,
        },
        "paper": {
            "growth_steps": 1000,
            "growth_lr": 0.5,
            "track_every": 50,
            "sweep_steps": 600,
            "lr_exponents": list(range(-4, 7)),
            "depth": 10,
            "sigmoid_steps": 2000,
            "jac_batch": 10,
        },
    },
    "inception": {  # chapter 06; steps: the Baseline's (its lr decays 10x over them, so it ends on a plateau)
        # quick: 600 steps and BN-Baseline at half of them keep 60 runs in about 3.5 minutes on 2 cores
        "smoke": {
            "steps": 20,
            "eval_every": 5,
            "accelerated_share": 0.5,
            "bn_baseline_share": 0.5,
            "ablation_seeds": 0,
        },
        "quick": {
            "steps": 600,
            "eval_every": 50,
            "accelerated_share": 1 / 3,
            "bn_baseline_share": 0.5,
            "ablation_seeds": 0,
        },
        "paper": {
            "steps": 1000,
            "eval_every": 50,
            "accelerated_share": 1 / 3,
            "bn_baseline_share": 0.5,
            "ablation_seeds": 10,
        },
    },
    "ics": {  # chapter 09; quick: 5 arms x 10 MLPs x 1,000 steps, each measured 6 times
        "smoke": {
            "steps": 30,
            "eval_every": 15,
            "measure_every": 15,
            "measure_images": 60,
            "power_iters": 2,
            "depths": [3, 6],
        },
        "quick": {
            "steps": 1000,
            "eval_every": 100,
            "measure_every": 200,
            "measure_images": 250,
            "power_iters": 10,
            "depths": [5, 10, 20, 30, 50],
        },
        "paper": {
            "steps": 2000,
            "eval_every": 200,
            "measure_every": 200,
            "measure_images": 500,
            "power_iters": 20,
            "depths": [5, 10, 20, 30, 50],
        },
    },
    "replicas": {  # chapter 10; quick: 4 arms (k = 1, 2, 4, 8) x 10 MLPs x 1,000 steps, + 2 x 2 processes
        # noise_draws: local batches per run for the statistics' noise; equality_steps: float64 steps
        # of the real 2-process runs (the protocol's EQ_STEPS in quick and paper)
        "smoke": {"steps": 30, "eval_every": 15, "noise_draws": 5, "equality_steps": 3},
        "quick": {"steps": 1000, "eval_every": 100, "noise_draws": 50, "equality_steps": 30},
        "paper": {"steps": 2000, "eval_every": 200, "noise_draws": 100, "equality_steps": 30},
    },
    "successors": {  # chapter 11 (extending the book): the MLP at mini-batches of 4, the conv net at 64
        "smoke": {"mlp_steps": 30, "mlp_eval_every": 15, "conv_steps": 10, "conv_eval_every": 5},
        "quick": {"mlp_steps": 1000, "mlp_eval_every": 100, "conv_steps": 250, "conv_eval_every": 50},
        "paper": {"mlp_steps": 2000, "mlp_eval_every": 200, "conv_steps": 500, "conv_eval_every": 50},
    },
    "figure1": {  # chapter 07
        "smoke": {"steps": 60, "track_every": 5, "eval_every": 20, "neighbour_steps": 30},
        "quick": {"steps": 5000, "track_every": 100, "eval_every": 250, "neighbour_steps": 1500},
        "paper": {"steps": 10000, "track_every": 200, "eval_every": 500, "neighbour_steps": 3000},
    },
}


def _check_profile(profile: str) -> None:
    if profile not in PROFILE_NAMES:
        raise ConfigError(f"profile must be one of {PROFILE_NAMES}, got {profile!r}")


def settings(experiment: str, profile: str, steps: int = 0) -> dict:
    """The numbers of one experiment in one profile (a copy: callers may change it).

    steps > 0 shortens (or lengthens) the run, by one rule for every experiment: the experiment's
    step counts (every key that ends in "steps" or "_every", and "warmup") are scaled by
    steps / its main step count ("steps", else the first key that ends in "steps"), rounded, at
    least 1. A record made with other lengths than the profile's is refused by the ledger."""
    _check_profile(profile)
    if experiment not in SETTINGS:
        raise UnknownNameError(f"unknown experiment {experiment!r}; known: {', '.join(SETTINGS)}")
    out = dict(SETTINGS[experiment][profile])
    if steps < 0:
        raise ConfigError(f"steps must be >= 0 (0: the profile's), got {steps}")
    counts = [k for k in out if k.endswith("steps") or k.endswith("_every") or k == "warmup"]
    main = "steps" if "steps" in out else next((k for k in counts if k.endswith("steps")), None)
    if steps and main is not None:
        factor = steps / out[main]
        for k in counts:
            out[k] = max(1, round(out[k] * factor))
        out[main] = int(steps)
    return out


def n_eval(profile: str) -> int:
    _check_profile(profile)
    return N_EVAL[profile]


def eval_seeds(profile: str, first: int = 0, n: int = 0) -> list[int]:
    """The evaluation seeds: EVAL_SEED0 + first, + first + 1, ... (n of them, 0 = the profile's
    N_EVAL). `first` is an offset into the block (a chapter's `seed` parameter)."""
    n = n or n_eval(profile)
    seeds = list(range(EVAL_SEED0 + first, EVAL_SEED0 + first + n))
    if first < 0 or seeds[-1] >= TUNING_SEED0:
        raise ConfigError(
            f"evaluation seeds must lie in [{EVAL_SEED0}, {TUNING_SEED0}) so that they never meet the "
            f"tuning seeds, got {seeds[0]}..{seeds[-1]}"
        )
    return seeds


def tuning_seeds(profile: str) -> list[int]:
    """The tuning seeds, disjoint from every evaluation seed."""
    _check_profile(profile)
    return list(range(TUNING_SEED0, TUNING_SEED0 + N_TUNE[profile]))
