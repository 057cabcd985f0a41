"""Numbers published in Ioffe & Szegedy (2015), for side-by-side tables. Sources: the paper's
Figure 3 (ImageNet, Sec. 4.2) and one public MNIST reproduction (full MNIST, N(0, 0.01)
init, SGD momentum 0.9, lr 0.01), quoted for comparison, not the paper's own numbers.
These are the paper's results, not ours: every "ours" column in the book is computed."""

FIGURE3 = {  # model: initial learning rate, steps to reach 72.2% (Inception's best), max top-1 accuracy
    "Inception": {"lr": 0.0015, "steps_to_baseline_best": 31.0e6, "max_accuracy": 0.722},
    "BN-Baseline": {"lr": 0.0015, "steps_to_baseline_best": 13.3e6, "max_accuracy": 0.727},
    "BN-x5": {"lr": 0.0075, "steps_to_baseline_best": 2.1e6, "max_accuracy": 0.730},
    "BN-x30": {"lr": 0.045, "steps_to_baseline_best": 2.7e6, "max_accuracy": 0.748},
    "BN-x5-Sigmoid": {
        "lr": 0.0075,
        "steps_to_baseline_best": None,
        "max_accuracy": 0.698,
    },  # never reached 72.2%
    "Inception-Sigmoid": {
        "lr": 0.0015,
        "steps_to_baseline_best": None,
        "max_accuracy": 0.001,
    },  # "never exceeds 1/1000"
}

MNIST_REPRODUCTION = {  # full MNIST, N(0, 0.01) init, SGD momentum 0.9, lr 0.01 (not the paper's own numbers)
    "without_bn": 0.9492,
    "with_bn": 0.9815,
}
