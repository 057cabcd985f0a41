"""bench --train's arithmetic: the FLOPs it counts per step and the fraction of peak it reports.
(The timings themselves are printed by `bnpaper bench --train`, never asserted.)"""

import pytest

from bnpaper import bench


def test_the_mlp_step_flops_agree_with_a_count_by_hand():
    """Sec. 4.1's network at m = 60: forward 2 m (784*100 + 100*100 + 100*100 + 100*10) FLOPs;
    backward the same again for the weight gradients, plus the input gradients of every layer
    but the first (the digits need none)."""
    m, layers = 60, [(784, 100), (100, 100), (100, 100), (100, 10)]
    forward = sum(2 * m * i * o for i, o in layers)
    backward = forward + sum(2 * m * i * o for i, o in layers[1:])
    assert bench.step_flops("mlp") == forward + backward == 26_376_000


def test_fraction_of_peak_uses_the_threads_each_mode_runs_on():
    peaks = {1: {"matmul": 100e9, "conv": 50e9}, 2: {"matmul": 180e9, "conv": 90e9}}
    row = lambda model, mode, speed: dict(  # noqa: E731
        model=model, mode=mode, runs=10, steps_per_s_per_run=speed, ratio_to_single=1.0
    )
    rows = [row("mlp", "single", 1000.0), row("mlp", "batched", 1000.0), row("convnet", "batched", 100.0)]
    out = bench.add_fraction_of_peak(rows, peaks, {"mlp": 20_000_000, "convnet": 100_000_000})
    assert out[0]["gflop_per_s"] == pytest.approx(20.0) and out[0]["fraction_of_peak"] == pytest.approx(
        20 / 180
    )
    assert out[1]["fraction_of_peak"] == pytest.approx(20 / 100)  # one thread: the one-thread peak
    assert out[2]["fraction_of_peak"] == pytest.approx(10 / 50)  # a conv net: the convolution peak
    table = bench.format_train_table(out)
    assert "11.1%" in table and "20.0%" in table


def test_a_bf16_row_is_measured_against_the_bf16_peak():
    peaks = {1: {"matmul": 100e9, "conv": 50e9, "matmul_bf16": 400e9, "conv_bf16": 100e9}}
    rows = [
        dict(model="mlp", mode="batched bf16", runs=10, steps_per_s_per_run=1000.0, ratio_to_single=1.5),
        dict(model="convnet", mode="single bf16", runs=1, steps_per_s_per_run=100.0, ratio_to_single=1.2),
    ]
    out = bench.add_fraction_of_peak(rows, peaks, {"mlp": 20_000_000, "convnet": 100_000_000})
    assert out[0]["fraction_of_peak"] == pytest.approx(20 / 400) and out[1][
        "fraction_of_peak"
    ] == pytest.approx(10 / 100)
