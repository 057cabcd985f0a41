"""Benchmark: forward + backward time and saved-for-backward memory, bnpaper vs torch's native BN.

Not a test: timings on a shared machine vary, so every time is reported as a ratio to torch's
native `F.batch_norm` measured in the same process, interleaved repeat by repeat.

    python -m bnpaper bench [--device cpu|cuda] [--repeats 25] [--out _build/bench]
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as TF

from bnpaper.autograd import batch_norm_train
from bnpaper.cache import write_json_atomic
from bnpaper.device import resolve_device
from bnpaper.errors import ConfigError, MissingError

SHAPES = [(60, 100), (256, 1024), (64, 64, 32, 32), (32, 256, 14, 14)]
GOALS = {
    2: 1.2,
    4: 1.1,
}  # compiled/native time ratio goal (issue 9): FC shapes (rank 2), conv shapes (rank 4)
GOAL_IMPL = "compiled"  # the route to native speed: torch.compile of the readable fast path


@dataclass
class BenchConfig:
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    repeats: int = 25  # interleaved timed repeats per implementation (median reported); >= 20
    warmup: int = 3  # untimed repeats first
    dtype: str = "float32"
    shapes: list = field(default_factory=lambda: [list(s) for s in SHAPES])


def _native(x, w, b):
    return TF.batch_norm(x, None, None, w, b, training=True, eps=1e-5)


class _CopyFunction(torch.autograd.Function):
    """Copies x forward, passes dy back: what any Python autograd.Function costs before doing math."""

    @staticmethod
    def forward(x, w, b):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, dy):
        return dy, None, None


IMPLS: dict[str, Callable] = {
    "native": _native,
    "floor": _CopyFunction.apply,  # the Python floor: a custom Function that does no BN at all
    "fast": lambda x, w, b: batch_norm_train(x, w, b, impl="fast")[0],
    "compiled": lambda x, w, b: batch_norm_train(x, w, b, impl="compiled")[0],
    "reference": lambda x, w, b: batch_norm_train(x, w, b, impl="reference")[0],
}


def saved_bytes(fn: Callable, x, w, b) -> int:
    """Bytes of distinct tensors autograd saves for backward during one forward of fn."""
    seen: dict[tuple, int] = {}

    def pack(t):
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        seen[key] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x, w, b)
    return sum(seen.values())


def _step(fn, x, w, b, dy, sync):
    x.grad = w.grad = b.grad = None
    t0 = time.perf_counter()
    fn(x, w, b).backward(dy)
    sync()
    return time.perf_counter() - t0


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(config: BenchConfig) -> dict:
    if config.repeats < 20:
        raise ConfigError(f"repeats must be >= 20 for a stable median, got {config.repeats}")
    device = resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for shape in config.shapes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g, dtype=dtype).to(device).requires_grad_()
        dy = torch.randn(shape, generator=g, dtype=dtype).to(device)
        w = torch.ones(shape[1], dtype=dtype, device=device, requires_grad=True)
        b = torch.zeros(shape[1], dtype=dtype, device=device, requires_grad=True)
        for fn in IMPLS.values():  # compile (torch.compile) and warm every implementation untimed
            _step(fn, x, w, b, dy, sync)
        times: dict[str, list[float]] = {name: [] for name in IMPLS}
        for i in range(config.warmup + config.repeats):
            for name, fn in IMPLS.items():  # interleaved: each repeat times every implementation
                t = _step(fn, x, w, b, dy, sync)
                if i >= config.warmup:
                    times[name].append(t)
        input_bytes = x.numel() * x.element_size()
        med = {name: statistics.median(ts) for name, ts in times.items()}
        for name in IMPLS:
            sb = saved_bytes(IMPLS[name], x, w, b)
            rows.append(
                {
                    "shape": list(shape),
                    "impl": name,
                    "median_ms": med[name] * 1e3,
                    "iqr_ms": (
                        statistics.quantiles(times[name], n=4)[2] - statistics.quantiles(times[name], n=4)[0]
                    )
                    * 1e3,
                    "ratio_to_native": med[name] / med["native"],
                    "saved_bytes": sb,
                    "saved_over_input": sb / input_bytes,
                    "goal_ratio": GOALS.get(len(shape)) if name == GOAL_IMPL else None,
                }
            )
    return {
        "config": asdict(config),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": __import__("os").cpu_count(),
        "rows": rows,
    }


def format_table(result: dict) -> str:
    head = (
        f"{'shape':<18} {'impl':<10} {'median ms':>10} {'IQR ms':>8} "
        f"{'x native':>9} {'saved MB':>9} {'x input':>8}  goal"
    )
    lines = [
        f"device {result['device']} ({result['device_name']}), torch {result['torch']}, "
        f"{result['threads']} threads, {result['cpu_count']} cores, "
        f"{result['config']['repeats']} interleaved repeats",
        head,
        "-" * len(head),
    ]
    for r in result["rows"]:
        goal = ""
        if r["goal_ratio"] is not None:
            ok = r["ratio_to_native"] <= r["goal_ratio"]
            goal = f"<= {r['goal_ratio']}x: {'met' if ok else 'MISSED'}"
        lines.append(
            f"{str(tuple(r['shape'])):<18} {r['impl']:<10} {r['median_ms']:>10.3f} {r['iqr_ms']:>8.3f} "
            f"{r['ratio_to_native']:>9.2f} {r['saved_bytes'] / 2**20:>9.2f} "
            f"{r['saved_over_input']:>8.2f}  {goal}"
        )
    return "\n".join(lines)


RECORDED = Path(__file__).resolve().parents[1] / "book" / "bench"  # the run chapter 01 shows


def main(config: BenchConfig, out_dir: Path, record: bool = False) -> dict:
    """Run, print the table, write bench-<device>.json to out_dir (and to book/bench/ with record)."""
    result = run(config)
    result["date"] = time.strftime("%Y-%m-%d")
    print(format_table(result))
    for folder in [out_dir] + ([RECORDED] if record else []):
        path = folder / f"bench-{result['device'].split(':')[0]}.json"
        write_json_atomic(path, result)
        print(f"wrote {path}")
    return result


def load_recorded(device: str = "cpu") -> dict:
    """The run recorded with `bnpaper bench --record` (book/bench/bench-<device>.json)."""
    path = RECORDED / f"bench-{device}.json"
    if not path.exists():
        raise MissingError(f"no recorded benchmark at {path}: run `bnpaper bench --device {device} --record`")
    return json.loads(path.read_text())


def provenance(result: dict, lang: str) -> str:
    """One clause saying where and when a recorded run was measured, in the edition's language."""
    iso = "\u2066{}\u2069"  # numbers and names isolated left-to-right inside Arabic text
    date, threads, name = result.get("date", "?"), result["threads"], result["device_name"]
    if lang == "ar":
        return (
            f"جرى القياس في {iso.format(date)} على المعالج `{name}` "  # the name as the OS reports it
            f"بإصدار torch `{result['torch']}` وعدد خيوط {iso.format(threads)}"
        )
    return f"measured on {date} on {name}, torch {result['torch']}, {threads} threads"


# ----------------------------------------------------------------------------- training throughput

TRAIN_MODELS = {  # the book's three networks at their chapters' mini-batch sizes
    "mlp": {
        "model": "mlp",
        "hidden": [100, 100, 100],
        "activation": "sigmoid",
        "batch_size": 60,
        "init_std": 0.1,
    },
    "convnet": {"model": "convnet", "batch_size": 64},
    "inception": {"model": "inception", "batch_size": 32, "init": "he"},
}
TRAIN_STEPS = {"mlp": 300, "convnet": 60, "inception": 20}
COMPILED_MODELS = ("mlp",)  # the engine batches the MLP only (engine.BATCHED_MODELS); see test_engine
TRAIN_GOALS = {("mlp", 10): 5.0, ("convnet", 10): 1.5}  # batched+cores vs single, 10 runs (issue 26)


def train_bench(
    device: str = "cpu", runs: tuple[int, ...] = (1, 3, 10, 30), models=tuple(TRAIN_MODELS)
) -> list[dict]:
    """Training throughput, each mode a ratio to `single` measured in this invocation.

    steps_per_s_per_run counts the SGD steps of every run trained, per second of wall time: for R
    runs batched, R x steps / seconds; it is what R sequential single runs would have to beat.
    single: `train.train`, one run at a time (as the chapters trained before the engine);
    batched: R runs as one computation in this process (one thread);
    batched+cores: 10 runs as the chapters train them (`engine.train_many`: the MLP's runs batched
    in chunks, the conv nets' one by one) over worker processes (`engine.pool_size()`), the
    processes started before the timing.
    """
    from dataclasses import replace

    from bnpaper import engine
    from bnpaper.progress import quiet
    from bnpaper.train import TrainConfig, train

    rows = []
    with quiet():
        for name in models:
            steps = TRAIN_STEPS[name]
            base = TrainConfig(
                **TRAIN_MODELS[name], steps=steps, eval_every=steps, final_train_acc=False, device=device
            )
            train(replace(base, steps=5, eval_every=5))  # warm up (allocations, data)
            _, h = train(base)
            single = steps / h["train_seconds"]
            rows.append(_train_row(name, "single", 1, single, single))
            _, h = train(replace(base, precision="bf16"))  # the option: bfloat16 forward (autocast)
            rows.append(_train_row(name, "single bf16", 1, steps / h["train_seconds"], single))
            for R in runs:
                res = engine.train_many([replace(base, seed=s) for s in range(R)], workers=1, batch=True)
                rows.append(
                    _train_row(name, "batched", R, R * steps / (R * res[0][1]["train_seconds"]), single)
                )
                if R == 10:  # the option at the chapters' 10 seeds: bfloat16 forward (autocast)
                    cfgs = [replace(base, seed=s, precision="bf16") for s in range(R)]
                    res = engine.train_many(cfgs, workers=1, batch=True)
                    per_run = R * steps / (R * res[0][1]["train_seconds"])
                    rows.append(_train_row(name, "batched bf16", R, per_run, single))
                if name in COMPILED_MODELS:  # the compiled step: once cold (compiling), once warm
                    cfgs = [replace(base, seed=s, step="compiled") for s in range(R)]
                    cold = engine.train_many(cfgs, workers=1, batch=True)[0][1]["train_seconds"] * R
                    warm = engine.train_many(cfgs, workers=1, batch=True)[0][1]["train_seconds"] * R
                    row = _train_row(name, "batched compiled", R, R * steps / warm, single)
                    rows.append({**row, "compile_seconds": cold - warm})
            workers = engine.pool_size()
            quick = replace(base, steps=2, eval_every=2)  # start the worker processes before timing
            engine.train_many([replace(quick, seed=s) for s in range(10)], workers=workers)
            t0 = time.perf_counter()
            engine.train_many([replace(base, seed=s) for s in range(10)], workers=workers)
            total = 10 * steps / (time.perf_counter() - t0)
            rows.append(_train_row(name, f"batched+cores ({workers} workers)", 10, total, single))
            if name in COMPILED_MODELS:  # the workers compile their chunk's step first (timed apart)
                compiled = [replace(base, seed=s, step="compiled") for s in range(10)]
                engine.train_many([replace(c, steps=2, eval_every=2) for c in compiled], workers=workers)
                t0 = time.perf_counter()
                engine.train_many(compiled, workers=workers)
                total = 10 * steps / (time.perf_counter() - t0)
                rows.append(_train_row(name, f"batched+cores compiled ({workers})", 10, total, single))
    return rows


def _train_row(model: str, mode: str, runs: int, per_run: float, single: float) -> dict:
    return {
        "model": model,
        "mode": mode,
        "runs": runs,
        "steps_per_s_per_run": per_run,
        "ratio_to_single": per_run / single,
    }


def step_flops(name: str) -> int:
    """Matrix-product and convolution FLOPs of one SGD step of one run of a book network (forward and
    backward at its chapter's mini-batch size), as torch.utils.flop_counter counts them. Elementwise
    work (BN, the nonlinearities, the update) is not counted: it is what the peak cannot measure."""
    from torch.utils.flop_counter import FlopCounterMode

    from bnpaper.train import TrainConfig, build_model

    cfg = TrainConfig(**TRAIN_MODELS[name], steps=1)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = torch.rand(cfg.batch_size, 1, 28, 28)  # (m, 1, 28, 28): the book's digits
    y = torch.randint(0, 10, (cfg.batch_size,))
    with FlopCounterMode(display=False) as counter:
        TF.cross_entropy(model(x), y).backward()
    return int(counter.get_total_flops())


def _flops_per_s(fn: Callable, flops: float, repeats: int = 7) -> float:
    fn()  # warm up: allocations, oneDNN's kernel choice
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times)


def machine_peak(threads: int) -> dict:
    """The machine's sustained float32 throughput (FLOP/s) on `threads` torch threads: a large
    matrix product (1024^3, the best this CPU's BLAS does), the MLP's first layer as the engine
    multiplies it (10 runs' (60, 784) x (784, 100) as one bmm) and a convolution at the conv net's
    shapes (forward, 3 x 3). The fraction of peak in the training table is against `matmul` for the
    MLP and `conv` for the conv nets."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
        xa, wa = torch.randn(10, 60, 784, generator=g), torch.randn(10, 784, 100, generator=g)
        xc, wc = torch.randn(64, 32, 14, 14, generator=g), torch.randn(64, 32, 3, 3, generator=g)
        conv_flops = 2 * 64 * 64 * 14 * 14 * 32 * 9  # (N, C_out, H, W) outputs x C_in x 3 x 3 MACs
        a16, b16, xc16, wc16 = (t.to(torch.bfloat16) for t in (a, b, xc, wc))
        return {
            "threads": threads,
            "matmul": _flops_per_s(lambda: torch.mm(a, b), 2 * 1024**3),
            "mlp_layer_bmm": _flops_per_s(lambda: torch.bmm(xa, wa), 2 * 10 * 60 * 784 * 100),
            "conv": _flops_per_s(lambda: TF.conv2d(xc, wc, padding=1), conv_flops),
            "matmul_bf16": _flops_per_s(lambda: torch.mm(a16, b16), 2 * 1024**3),  # AMX / AVX512-BF16
            "conv_bf16": _flops_per_s(lambda: TF.conv2d(xc16, wc16, padding=1), conv_flops),
        }
    finally:
        torch.set_num_threads(old)


def add_fraction_of_peak(rows: list[dict], peaks: dict[int, dict], flops: dict[str, int]) -> list[dict]:
    """Each row's achieved FLOP/s (its steps per second x the step's counted FLOPs) and that as a
    fraction of the peak measured on the threads the mode uses (`batched`: 1; `single` and
    `batched+cores`: all of them, as one run's threads or as one process per core)."""
    most = max(peaks)
    for r in rows:
        one_thread = r["mode"].startswith("batched") and not r["mode"].startswith("batched+cores")
        kind = ("matmul" if r["model"] == "mlp" else "conv") + ("_bf16" if r["mode"].endswith("bf16") else "")
        peak = peaks[1 if one_thread else most][kind]  # a bf16 row against the bf16 peak
        r["gflop_per_s"] = r["steps_per_s_per_run"] * flops[r["model"]] / 1e9
        r["fraction_of_peak"] = r["gflop_per_s"] * 1e9 / peak
    return rows


def format_peak(peaks: dict[int, dict]) -> str:
    lines = [
        "measured peak, GFLOP/s:            threads  matmul 1024^3  MLP layer bmm  conv 3x3  "
        "matmul bf16  conv bf16"
    ]
    for t, p in sorted(peaks.items()):
        lines.append(
            f"{'':34}{t:>8} {p['matmul'] / 1e9:>14.1f} {p['mlp_layer_bmm'] / 1e9:>14.1f} "
            f"{p['conv'] / 1e9:>9.1f} {p['matmul_bf16'] / 1e9:>12.1f} {p['conv_bf16'] / 1e9:>10.1f}"
        )
    return "\n".join(lines)


def format_train_table(rows: list[dict]) -> str:
    head = (
        f"{'model':<10} {'mode':<28} {'runs':>5} {'steps/s/run':>12} {'x single':>9} {'GFLOP/s':>8} "
        f"{'of peak':>8}  goal"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        goal = TRAIN_GOALS.get((r["model"], r["runs"])) if r["mode"].startswith("batched+cores") else None
        verdict = f">= {goal}x: {'met' if r['ratio_to_single'] >= goal else 'MISSED'}" if goal else ""
        peak = (
            f"{r['gflop_per_s']:>8.2f} {r['fraction_of_peak']:>8.1%}" if "gflop_per_s" in r else f"{'':>17}"
        )
        if "compile_seconds" in r:
            verdict = f"(compiling: {r['compile_seconds']:.1f} s, once per shape and process)"
        lines.append(
            f"{r['model']:<10} {r['mode']:<28} {r['runs']:>5} {r['steps_per_s_per_run']:>12.1f} "
            f"{r['ratio_to_single']:>9.2f} {peak}  {verdict}"
        )
    return "\n".join(lines)


def main_train(device: str, out_dir: Path) -> list[dict]:
    rows = train_bench(device)
    peaks: dict[int, dict] = {}
    if resolve_device(device).type == "cpu":  # the peak is measured on the CPU's threads
        peaks = {t: machine_peak(t) for t in sorted({1, torch.get_num_threads()})}
        add_fraction_of_peak(rows, peaks, {name: step_flops(name) for name in TRAIN_MODELS})
        print(format_peak(peaks))
    print(format_train_table(rows))
    path = out_dir / f"train-{resolve_device(device).type}.json"
    write_json_atomic(path, {"rows": rows, "peak": {str(t): p for t, p in peaks.items()}})
    print(f"wrote {path}")
    return rows


# ----------------------------------------------------------------------------- synchronized BN (issue 14)

SYNC_SHAPES = [(64, 100), (256, 1024), (64, 64, 32, 32)]  # global batches: FC, wide FC, conv


def _fast_fn(x, w, b):
    return batch_norm_train(x, w, b, impl="fast")[0]


def _sync_fn(x, w, b):
    from bnpaper.sync import sync_batch_norm_train

    return sync_batch_norm_train(x, w, b)[0]


def _single_step(x, w, b, dy, threads: int) -> float:
    """Single-process BN on the whole global batch, with the threads of the whole machine."""
    torch.set_num_threads(threads)
    try:
        return _step(_fast_fn, x, w, b, dy, lambda: None)
    finally:
        torch.set_num_threads(1)


def _collectives(C: int, world: int) -> float:
    """The collectives of one synchronized step alone: all-gather (1 + 2C,), all-reduce (2, C)."""
    import torch.distributed as dist

    packed = torch.zeros(1 + 2 * C)
    parts = [torch.empty_like(packed) for _ in range(world)]
    sums = torch.zeros(2, C)
    t0 = time.perf_counter()
    dist.all_gather(parts, packed)
    dist.all_reduce(sums)
    return time.perf_counter() - t0


def _sync_replica(shapes: list, repeats: int, warmup: int) -> dict:
    """In each of W replicas: per repeat, (1) rank 0 alone runs single-process BN on the whole global
    batch with W threads while the others wait at a barrier, (2) every replica runs synchronized BN
    forward + backward on its 1/W share with one thread, (3) the same collectives alone (the
    statistics' all-gather and the gradient sums' all-reduce, same sizes). Interleaved, so machine
    noise hits all three alike; rank 0's medians are returned."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    out = []
    for shape in shapes:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=g)
        dy = torch.randn(shape, generator=g)
        C = shape[1]
        w = torch.ones(C, requires_grad=True)
        b = torch.zeros(C, requires_grad=True)
        rows = torch.tensor_split(torch.arange(shape[0]), world)[rank]
        xl, dyl = x[rows].clone().requires_grad_(), dy[rows].clone()
        xg = x.clone().requires_grad_()

        times = {"single": [], "sync": [], "comm": []}
        for i in range(warmup + repeats):
            dist.barrier()
            t = _single_step(xg, w, b, dy, world) if rank == 0 else 0.0
            dist.barrier()
            ts = _step(_sync_fn, xl, w, b, dyl, lambda: None)
            dist.barrier()
            tc = _collectives(C, world)
            if i >= warmup:
                times["single"].append(t)
                times["sync"].append(ts)
                times["comm"].append(tc)
        med = {k: statistics.median(v) for k, v in times.items()}
        out.append({"shape": list(shape), **{f"{k}_ms": v * 1e3 for k, v in med.items()}})
    return {"rows": out}


def sync_bench(processes: int = 2, repeats: int = 25, warmup: int = 3, shapes=None) -> dict:
    """Synchronized BN on `processes` gloo processes (one thread each) against single-process BN on
    the same global batch (`processes` threads), forward + backward, float32, CPU: medians of
    interleaved repeats, as ratios measured in one run, with the collectives' share of the synced step."""
    from bnpaper.distributed import launch

    if repeats < 20:
        raise ConfigError(f"repeats must be >= 20 for a stable median, got {repeats}")
    shapes = [list(s) for s in (shapes or SYNC_SHAPES)]
    res = launch(_sync_replica, processes, shapes, repeats, warmup, timeout_s=600)[0]
    for r in res["rows"]:
        r["sync_over_single"] = r["sync_ms"] / r["single_ms"]
        r["comm_share"] = r["comm_ms"] / r["sync_ms"]
    return {
        "processes": processes,
        "backend": "gloo",
        "repeats": repeats,
        "device_name": cpu_name(),
        "torch": torch.__version__,
        "cpu_count": __import__("os").cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        **res,
    }


def format_sync_table(result: dict) -> str:
    head = (
        f"{'global batch':<18} {'single ms':>10} {'sync ms':>9} {'x single':>9} "
        f"{'collectives ms':>15} {'share':>6}"
    )
    lines = [
        f"synchronized BN on {result['processes']} {result['backend']} processes (1 thread each) vs one "
        f"process ({result['processes']} threads), {result['device_name']}, torch {result['torch']}, "
        f"{result['repeats']} interleaved repeats, forward + backward, float32",
        head,
        "-" * len(head),
    ]
    for r in result["rows"]:
        lines.append(
            f"{str(tuple(r['shape'])):<18} {r['single_ms']:>10.3f} {r['sync_ms']:>9.3f} "
            f"{r['sync_over_single']:>9.2f} {r['comm_ms']:>15.3f} {r['comm_share']:>6.0%}"
        )
    return "\n".join(lines)


def main_sync(out_dir: Path, repeats: int = 25) -> dict:
    result = sync_bench(repeats=repeats)
    print(format_sync_table(result))
    path = out_dir / "bench-sync-cpu.json"
    write_json_atomic(path, result)
    print(f"wrote {path}")
    return result
