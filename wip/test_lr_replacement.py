import numpy as np


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
