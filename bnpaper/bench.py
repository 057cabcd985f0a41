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
from bnpaper.device import resolve_device

SHAPES = [(60, 100), (256, 1024), (64, 64, 32, 32), (32, 256, 14, 14)]
GOALS = {2: 1.5, 4: 1.3}  # fast/native time ratio goal: FC shapes (rank 2), conv shapes (rank 4)


@dataclass
class BenchConfig:
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    repeats: int = 25  # interleaved timed repeats per implementation (median reported); >= 20
    warmup: int = 3  # untimed repeats first
    dtype: str = "float32"
    shapes: list = field(default_factory=lambda: [list(s) for s in SHAPES])


def _native(x, w, b):
    return TF.batch_norm(x, None, None, w, b, training=True, eps=1e-5)


IMPLS: dict[str, Callable] = {
    "native": _native,
    "fast": lambda x, w, b: batch_norm_train(x, w, b, impl="fast")[0],
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


def run(config: BenchConfig) -> dict:
    if config.repeats < 20:
        raise ValueError(f"repeats must be >= 20 for a stable median, got {config.repeats}")
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
            rows.append({
                "shape": list(shape),
                "impl": name,
                "median_ms": med[name] * 1e3,
                "iqr_ms": (statistics.quantiles(times[name], n=4)[2] - statistics.quantiles(times[name], n=4)[0]) * 1e3,
                "ratio_to_native": med[name] / med["native"],
                "saved_bytes": sb,
                "saved_over_input": sb / input_bytes,
                "goal_ratio": GOALS.get(len(shape)) if name == "fast" else None,
            })
    return {
        "config": asdict(config),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": __import__("os").cpu_count(),
        "rows": rows,
    }


def format_table(result: dict) -> str:
    head = f"{'shape':<18} {'impl':<10} {'median ms':>10} {'IQR ms':>8} {'x native':>9} {'saved MB':>9} {'x input':>8}  goal"
    lines = [
        f"device {result['device']} ({result['device_name']}), torch {result['torch']}, "
        f"{result['threads']} threads, {result['cpu_count']} cores, {result['config']['repeats']} interleaved repeats",
        head, "-" * len(head),
    ]
    for r in result["rows"]:
        goal = ""
        if r["goal_ratio"] is not None:
            ok = r["ratio_to_native"] <= r["goal_ratio"]
            goal = f"<= {r['goal_ratio']}x: {'met' if ok else 'MISSED'}"
        lines.append(
            f"{str(tuple(r['shape'])):<18} {r['impl']:<10} {r['median_ms']:>10.3f} {r['iqr_ms']:>8.3f} "
            f"{r['ratio_to_native']:>9.2f} {r['saved_bytes'] / 2**20:>9.2f} {r['saved_over_input']:>8.2f}  {goal}"
        )
    return "\n".join(lines)


def main(config: BenchConfig, out_dir: Path) -> dict:
    result = run(config)
    print(format_table(result))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{result['device'].split(':')[0]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")
    return result
