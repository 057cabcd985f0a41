"""The multi-run engine: run r of a batched training equals a separate `train.train` (float64).

The reference is `bnpaper.train.train`: one model, torch.optim.SGD, torch's own modules. The engine
shares only the model builders with it.
"""

import os
import signal
from dataclasses import replace

import pytest
import torch

from bnpaper import engine
from bnpaper.train import TrainConfig, build_model, train

TOL = 1e-9
BASE = dict(steps=50, eval_every=25, batch_size=16, dtype="float64", final_train_acc=False)
MODELS = {
    "mlp": dict(model="mlp", hidden=[16, 12], activation="sigmoid", init_std=0.1, lr=0.1),
    "convnet": dict(model="convnet", lr=0.05),
    "inception": dict(model="inception", init="he", lr=0.03),
}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")


def _assert_same(batched, single, tol: float = 0.0):
    TOL = tol or globals()["TOL"]
    (m_b, h_b), (m_s, h_s) = batched, single
    assert h_b["diverged"] == h_s["diverged"] and h_b["diverged_at"] == h_s["diverged_at"]
    assert h_b["eval_steps"] == h_s["eval_steps"]
    for key in ("loss", "val_acc"):
        assert len(h_b[key]) == len(h_s[key])
        for a, b in zip(h_b[key], h_s[key]):
            assert abs(a - b) <= TOL * max(1.0, abs(b)), key  # relative where a diverging loss is huge
    if not h_s["diverged"]:
        assert abs(h_b["final_test_acc"] - h_s["final_test_acc"]) <= TOL
        assert abs(h_b["final_val_acc"] - h_s["final_val_acc"]) <= TOL
    state_b, state_s = m_b.state_dict(), m_s.state_dict()
    assert list(state_b) == list(state_s)
    for name in state_s:
        a, b = state_b[name].double(), state_s[name].double()
        finite = torch.isfinite(b)
        assert torch.equal(finite, torch.isfinite(a)), name
        scale = (
            max(1.0, b[finite].abs().max().item()) if finite.any() else 1.0
        )  # relative to the tensor's size
        assert ((a - b)[finite].abs().max().item() if finite.any() else 0.0) <= TOL * scale, name


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("bn", [True, False], ids=["bn", "no_bn"])
def test_batched_run_equals_single_run(model, bn):
    base = TrainConfig(**BASE, **MODELS[model], bn=bn)
    cfgs = [
        replace(base, seed=0),
        replace(base, seed=1, lr=base.lr * 2, weight_decay=1e-3),
        replace(base, seed=2, momentum=0.5, dropout=0.3 if model == "mlp" else 0.0),
    ]
    if model == "mlp":  # dropout's rate may differ between runs, its presence may not
        cfgs = [replace(c, dropout=d) for c, d in zip(cfgs, (0.1, 0.2, 0.3))]
    batched = engine.train_many(cfgs, batch=True)
    assert all(h["batched_runs"] == 3 for _, h in batched)
    for cfg, res in zip(cfgs, batched):
        _assert_same(res, train(cfg))


def test_noisy_bn_batched_equals_single_and_redraws_every_step():
    """Santurkar et al.'s noisy BN: each run draws its own noise, the same alone or batched."""
    from bnpaper.models import BNNoise

    base = TrainConfig(**BASE, **MODELS["mlp"], bn=True, bn_noise=0.5)
    cfgs = [replace(base, seed=s) for s in (0, 1)]
    batched = engine.train_many(cfgs, batch=True)
    for cfg, res in zip(cfgs, batched):
        _assert_same(res, train(cfg))
    alone = train(cfgs[0])[0]
    noises = [m for m in alone.modules() if isinstance(m, BNNoise)]  # the last step's draw
    assert len(noises) == 2 and all(not torch.equal(m.scale, torch.ones_like(m.scale)) for m in noises)
    assert (
        1.0 <= noises[0].scale.min() and noises[0].scale.max() <= 1.5 and noises[0].shift.abs().max() <= 0.5
    )
    no_noise = train(replace(cfgs[0], bn_noise=0.0))[1]
    assert no_noise["loss"] != batched[0][1]["loss"]  # the noise changes training
    x = torch.randn(4, 16, dtype=torch.float64)
    assert torch.equal(noises[0].eval()(x), x)  # no noise at inference
    with pytest.raises(ValueError, match="level"):
        BNNoise(4, 0.0)


@pytest.mark.parametrize("bn", [True, False], ids=["bn", "no_bn"])
def test_a_diverging_member_stops_alone(bn):
    """Run 1's learning rate grows 1e12-fold per step (a per-run lr_decay_factor): it turns NaN
    after a few evaluations; runs 0 and 2 must not notice."""
    base = TrainConfig(**{**BASE, "eval_every": 5}, **{**MODELS["mlp"], "activation": "relu"}, bn=bn)
    base = replace(base, lr_decay_every=1, lr_decay_factor=1.0)
    cfgs = [
        replace(base, seed=0),
        replace(base, seed=1, lr_decay_factor=1e12),
        replace(base, seed=2, lr=0.05),
    ]
    batched = engine.train_many(cfgs, batch=True)
    single = [train(c) for c in cfgs]
    assert single[1][1]["diverged"] and single[1][1]["eval_steps"]  # diverged after evaluations
    assert not single[0][1]["diverged"] and not single[2][1]["diverged"]
    for b, s in zip(batched, single):
        _assert_same(b, s)


def test_groups_split_what_cannot_batch():
    a = TrainConfig(model="mlp", steps=5)
    cfgs = [
        a,
        replace(a, seed=1, lr=0.3),
        replace(a, steps=6),
        replace(a, dropout=0.2),
        replace(a, hidden=[8]),
    ]
    assert engine.groups(cfgs) == [[0, 1], [2], [3], [4]]


def test_runs_forward_shapes_and_prefix():
    torch.manual_seed(0)
    from bnpaper.train import build_model

    cfg = TrainConfig(model="mlp", hidden=[7, 5])
    runs = engine.Runs([build_model(cfg) for _ in range(4)]).train(False)
    x = torch.randn(9, 1, 28, 28)
    assert runs.forward(x, shared_input=True).shape == (4, 9, 10)
    assert runs.prefix(x, 3, shared_input=True).shape == (4, 9, 7)  # Flatten, Linear, BN


def test_worker_processes_give_the_same_runs():
    """Chunks of a group trained in two spawned worker processes (one thread each) equal the
    same runs trained in this process: chunking changes no result."""
    base = TrainConfig(**BASE, **MODELS["mlp"], bn=True)
    cfgs = [replace(base, seed=s, dropout=0.1 * (s + 1)) for s in range(4)] + [
        replace(base, seed=9, bn=False)
    ]
    here = engine.train_many(cfgs, workers=1)
    pooled = engine.train_many(cfgs, workers=2)
    for a, b in zip(here, pooled):
        _assert_same(a, b)
    assert [h["batched_runs"] for _, h in pooled] == [2, 2, 2, 2, 1]  # 4 runs in 2 chunks + the no-BN run


def test_pool_size_reads_free_cpus(monkeypatch):
    monkeypatch.delenv("BNPAPER_WORKERS", raising=False)
    from bnpaper import cpus

    monkeypatch.setattr(cpus, "busy_cpus", lambda: 0.0)
    allowed = cpus.allowed_cpus()
    assert engine.pool_size() == allowed
    monkeypatch.setattr(cpus, "busy_cpus", lambda: allowed - 0.2)  # other work keeps all but ~0 busy
    assert engine.pool_size() == 1
    monkeypatch.setenv("BNPAPER_WORKERS", "3")
    assert engine.pool_size() == 3


def test_conv_nets_train_one_run_per_task_unless_asked():
    base = TrainConfig(**{**BASE, "steps": 3, "eval_every": 3}, **MODELS["convnet"])
    cfgs = [replace(base, seed=s) for s in range(2)]
    assert [h["batched_runs"] for _, h in engine.train_many(cfgs)] == [1, 1]
    assert [h["batched_runs"] for _, h in engine.train_many(cfgs, batch=True)] == [2, 2]


def test_map_tasks_in_workers_and_here():
    assert engine.map_tasks(pow, [(2, 3), (3, 2), (5, 1)], workers=2) == [8, 9, 5]
    assert engine.map_tasks(pow, [(2, 3)], workers=2) == [8]  # one task: no pool needed


def _sigint_ignored() -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_workers_leave_sigint_to_the_parent():
    """A kernel stopped by papermill sends SIGINT to its process group: workers ignore it (no
    traceback per worker in the build log); the parent still handles Ctrl-C."""
    # Compared with the parent's own disposition, not with "handled": under nohup or in a background
    # job the parent starts with SIGINT ignored, and that is not the workers' doing.
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a worker must ignore it on its own
    try:
        assert engine.map_tasks(_sigint_ignored, [(), ()], workers=2) == [True, True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's, untouched
    finally:
        signal.signal(signal.SIGINT, before)


def test_step_decay_per_run_on_live_runs():
    """StepLR every 10 steps, a different factor per run, nobody diverging."""
    base = TrainConfig(**BASE, **MODELS["mlp"], bn=True)
    cfgs = [replace(base, seed=s, lr_decay_every=10, lr_decay_factor=f) for s, f in ((0, 0.5), (1, 0.9))]
    for b, s in zip(engine.train_many(cfgs, batch=True), [train(c) for c in cfgs]):
        assert not s[1]["diverged"]
        _assert_same(b, s)


def test_on_step_needs_one_group():
    a = TrainConfig(model="mlp", steps=2)
    with pytest.raises(ValueError, match="one group"):
        engine.train_many([a, replace(a, bn=False)], on_step=lambda step, runs: None)


def _fail_on_two(x):
    if x == 2:
        raise ArithmeticError(f"task {x} failed")
    return x


def test_a_failing_task_raises_and_the_pool_goes_on():
    with pytest.raises(ArithmeticError, match="task 2 failed"):
        engine.map_tasks(_fail_on_two, [(3,), (2,), (4,)], workers=2)
    assert engine.map_tasks(pow, [(2, 2), (3, 3)], workers=2) == [4, 27]


def test_ghost_batches_batched_equal_single_and_differ_from_bn():
    """Per-replica BN simulated as ghost batches: the same run alone or batched; not plain BN."""
    base = TrainConfig(**BASE, **MODELS["mlp"], bn=True, ghost_batches=2)
    cfgs = [replace(base, seed=s, batch_size=16) for s in (0, 1)]
    batched = engine.train_many(cfgs, batch=True)
    for cfg, res in zip(cfgs, batched):
        _assert_same(res, train(cfg))
    plain = train(replace(cfgs[0], ghost_batches=1))[1]
    assert plain["loss"] != batched[0][1]["loss"]
    with pytest.raises(ValueError, match="does not split into 3 equal ghost batches"):
        train(replace(cfgs[0], ghost_batches=3))
    with pytest.raises(ValueError, match="needs model 'mlp' or 'convnet' with bn"):
        train(replace(cfgs[0], bn=False))


@pytest.mark.parametrize("norm", ["layer", "group", "batch_renorm", "ghost_batch", "none"])
@pytest.mark.parametrize("model", ["mlp", "convnet"])
def test_every_norm_trains_batched_as_alone(norm, model):
    """BN's successors as a model option: each trains the same run alone or batched (torch.func)."""
    from bnpaper import models

    base = TrainConfig(**{**BASE, "steps": 20}, **MODELS[model], bn=True, norm=norm)
    if norm == "ghost_batch":
        base = replace(base, ghost_batches=2)
    cfgs = [replace(base, seed=s) for s in (0, 1)]
    # torch's LayerNorm / GroupNorm reduce in another order under vmap: float64 agrees to ~1e-8
    tol = 1e-7 if norm in ("layer", "group") else 0.0
    for cfg, res in zip(cfgs, engine.train_many(cfgs, batch=True)):
        _assert_same(res, train(cfg), tol)
    built = build_model(cfgs[0])
    kinds = {type(m).__name__ for m in built.modules()}
    expected = {
        "layer": {"LayerNorm"} if model == "mlp" else {"GroupNorm", "LayerNorm"},
        "group": {"GroupNorm"},
        "batch_renorm": {"BatchRenorm"},
        "ghost_batch": {"GhostBatchNorm"},
        "none": set(),
    }[norm]
    assert expected & kinds or (norm == "none" and not kinds & {"BatchNorm", "LayerNorm", "GroupNorm"}), kinds
    with pytest.raises(ValueError, match="norm must be one of"):
        models.norm_kind("weight")


def test_workers_die_with_their_parent(tmp_path):
    """A parent killed outright (kill -9: a stopped build, a killed `bnpaper tune`) takes its
    workers with it instead of leaving them running, orphaned."""
    import subprocess
    import sys
    import time

    code = (
        "import time; from bnpaper import engine; engine.map_tasks(time.sleep, [(120,), (120,)], workers=2)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        workers = []
        for _ in range(120):  # spawned workers import torch: allow them some seconds
            time.sleep(0.25)
            out = subprocess.run(
                ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(parent.pid)], capture_output=True, text=True
            )
            workers = [int(line.split()[0]) for line in out.stdout.splitlines() if "spawn_main" in line]
            if len(workers) == 2:
                break
        assert len(workers) == 2, out.stdout
        time.sleep(2)  # the workers have run their initializer
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [
            p
            for p in workers
            if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]
        ]
    assert not alive, f"workers {alive} outlived their parent"


# ----------------------------------------------------------------------------- the compiled step (issue 26)


def _diverging_trio(model: str, bn: bool, dtype: str) -> list[TrainConfig]:
    """Three runs, run 1 diverging (its lr grows 1e12-fold per step), as the test above."""
    base = TrainConfig(**{**BASE, "eval_every": 5, "dtype": dtype}, **MODELS[model], bn=bn)
    base = replace(base, lr_decay_every=1, lr_decay_factor=1.0)
    return [
        replace(base, seed=0),
        replace(base, seed=1, lr_decay_factor=1e12),
        replace(base, seed=2, lr=0.02),
    ]


@pytest.mark.parametrize(
    "model,dtype,tol",
    [("mlp", "float64", TOL), ("convnet", "float64", TOL), ("mlp", "float32", 1e-5)],
)
@pytest.mark.parametrize("bn", [True, False], ids=["bn", "no_bn"])
def test_the_compiled_step_equals_the_eager_reference(model, bn, dtype, tol):
    """TrainConfig.step = "compiled" (torch.compile of the batched loss with BN in plain operations,
    and of the SGD update) against the eager step over 50 steps: losses, accuracies, weights and
    running statistics to 1e-9 in float64, and for the MLP (the network the engine batches) to
    float32 rounding in float32, with a member that diverges and must stop alone.

    The conv nets in float32 are not held to it: on one thread, inductor's C++ reductions over a
    conv layer's 12,544 values per channel drift from eager float32 after about 30 steps (2e-4 in
    loss at step 50 against 1e-7 for eager, both measured against float64; on two threads they
    agree). The engine trains conv nets one run at a time (BATCHED_MODELS), eager."""
    cfgs = _diverging_trio(model, bn, dtype)
    eager = engine.train_many(cfgs, batch=True, workers=1)
    compiled = engine.train_many([replace(c, step="compiled") for c in cfgs], batch=True, workers=1)
    assert compiled[1][1]["diverged"] and not compiled[0][1]["diverged"] and not compiled[2][1]["diverged"]
    for r in (0, 2):  # the runs beside the diverging one do not notice it, compiled or not
        _assert_same(compiled[r], eager[r], tol)
    # the diverging run: equal while finite; the step at which its values (by then above 1e100)
    # overflow depends on the order of the arithmetic, which the compiler is free to change
    (_, hc), (_, he) = compiled[1], eager[1]
    assert he["diverged"] and abs(hc["diverged_at"] - he["diverged_at"]) <= 5
    if he["loss"] and hc["loss"] and abs(he["loss"][0]) < 1e6:  # not yet astronomically large
        assert abs(hc["loss"][0] - he["loss"][0]) <= tol * max(1.0, abs(he["loss"][0]))


def test_the_compiled_step_falls_back_to_eager_with_a_notice(monkeypatch):
    """No C++ compiler: one notice naming the fix, then the eager reference, bit for bit."""
    import warnings

    from bnpaper import autograd

    cfgs = _diverging_trio("mlp", True, "float64")[:1]
    eager = engine.train_many(cfgs, batch=True, workers=1)
    monkeypatch.setattr(autograd.shutil, "which", lambda _name: None)
    autograd.has_compiler.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="g\\+\\+"):
            fallback = engine.train_many([replace(c, step="compiled") for c in cfgs], batch=True, workers=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per process, not per group
            engine.train_many([replace(c, step="compiled") for c in cfgs], batch=True, workers=1)
    finally:
        autograd.has_compiler.cache_clear()
    _assert_same(fallback[0], eager[0], 1e-300)
    assert fallback[0][1]["loss"] == eager[0][1]["loss"]


def test_an_unknown_step_is_refused_before_training():
    from bnpaper.errors import ConfigError

    with pytest.raises(ConfigError, match="step = 'jit': expected one of eager, compiled"):
        engine.train_many([TrainConfig(model="mlp", steps=5, step="jit")], batch=True, workers=1)


def test_bf16_is_an_option_that_changes_the_arithmetic_the_key_and_nothing_else(tmp_path, monkeypatch):
    """precision='bf16': the forward under autocast (so the losses differ from float32 beyond
    float32 rounding, yet stay close), in batched and single runs alike; the precision is part of
    the config, so of the cache key; impossible combinations fail before any work."""
    from bnpaper import cache
    from bnpaper.errors import ConfigError

    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    base = TrainConfig(model="mlp", hidden=[32, 32], steps=20, eval_every=10, batch_size=32, read_test=False)
    f32 = [replace(base, seed=s) for s in (0, 1)]
    b16 = [replace(c, precision="bf16") for c in f32]
    batched = {p: engine.train_many(cfgs) for p, cfgs in (("f32", f32), ("b16", b16))}
    for (_, h32), (_, h16) in zip(batched["f32"], batched["b16"]):
        gap = max(abs(a - b) for a, b in zip(h32["loss"], h16["loss"]))
        assert 1e-5 < gap < 0.05  # bfloat16 arithmetic (8-bit significand), not float32 rounding
    _, single = train(b16[0])
    assert single["loss"] == pytest.approx(batched["b16"][0][1]["loss"], abs=0.02)
    assert cache.config_key("run", f32[0]) != cache.config_key("run", b16[0])
    for bad in (
        replace(b16[0], dtype="float64"),
        replace(b16[0], step="compiled"),
        replace(base, precision="fp8"),
    ):
        with pytest.raises(ConfigError, match="precision"):
            build_model(bad)
