"""bnpaper's BN under torch.func (functional_call + vmap over stacked runs) and torch.compile."""

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bnpaper import autograd as A
from bnpaper.layers import BatchNorm


def _mlp(seed, impl="fast", momentum=0.1):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 5, bias=False), BatchNorm(5, impl=impl, momentum=momentum), nn.Tanh(), nn.Linear(5, 3)
    ).double()


def _conv(seed, impl="fast", momentum=0.1):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=False),
        BatchNorm(4, impl=impl, momentum=momentum),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    ).double()


@pytest.mark.parametrize("build,shape", [(_mlp, (8, 6)), (_conv, (4, 2, 5, 5))], ids=["mlp", "conv"])
@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_vmap_over_stacked_runs_equals_separate_runs(build, shape, impl, momentum):
    R = 3
    models = [build(seed, impl, momentum) for seed in range(R)]
    separate = copy.deepcopy(models)
    params, buffers = stack_module_state(models)  # each (R, ...)
    base = copy.deepcopy(models[0]).to("meta")
    g = torch.Generator().manual_seed(7)
    for _step in range(3):
        x = torch.randn((R, *shape), generator=g, dtype=torch.float64)  # a different batch per run
        target = torch.randint(0, 3, (R, shape[0]), generator=g)

        def loss_fn(p, b, x, t):
            out = functional_call(base, (p, b), (x,))
            return nn.functional.cross_entropy(out, t)

        losses = vmap(loss_fn)(params, buffers, x, target)  # (R,), running statistics updated in place
        grads = torch.autograd.grad(losses.sum(), list(params.values()))
        for r, model in enumerate(separate):
            loss = nn.functional.cross_entropy(model(x[r]), target[r])
            ref_grads = torch.autograd.grad(loss, list(model.parameters()))
            assert abs(loss.item() - losses[r].item()) <= 1e-12
            for gs, gr in zip(grads, ref_grads):
                assert (gs[r] - gr).abs().max().item() <= 1e-12
    for r, model in enumerate(separate):
        for name, buf in model.named_buffers():
            assert (buffers[name][r].double() - buf.double()).abs().max().item() <= 1e-12, name
        assert buffers["1.num_batches_tracked"][r].item() == 3


def test_torch_compile_matches_eager():
    eager = _conv(0)
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model)
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        x = torch.randn(6, 2, 5, 5, generator=g, dtype=torch.float64)
        ye, yc = eager(x), compiled(x)
        assert (ye - yc).abs().max().item() <= 1e-12
        ye.square().sum().backward(), yc.square().sum().backward()
    for (n, pe), pc in zip(eager.named_parameters(), compiled_model.parameters()):
        assert (pe.grad - pc.grad).abs().max().item() <= 1e-10, n
    for (n, be), bc in zip(eager.named_buffers(), compiled_model.buffers()):
        assert (be.double() - bc.double()).abs().max().item() <= 1e-12, n


def test_compiled_impl_matches_fast():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 3, 4, 4, generator=g).requires_grad_()
    gamma = (torch.rand(3, generator=g) + 0.5).requires_grad_()
    beta = torch.randn(3, generator=g).requires_grad_()
    dy = torch.randn(16, 3, 4, 4, generator=g)
    outs = {}
    for impl in ("fast", "compiled"):
        for t in (x, gamma, beta):
            t.grad = None
        y, mu, var = A.batch_norm_train(x, gamma, beta, impl=impl)
        y.backward(dy)
        outs[impl] = [y.detach(), mu, var, x.grad.clone(), gamma.grad.clone(), beta.grad.clone()]
    for a, b in zip(outs["fast"], outs["compiled"]):
        assert (a - b).abs().max().item() <= 1e-5


def test_compiled_impl_falls_back_with_a_notice(monkeypatch):
    monkeypatch.setattr(A.shutil, "which", lambda _name: None)
    A._compiled.cache_clear()
    A.has_compiler.cache_clear()
    try:
        x = torch.randn(8, 3, dtype=torch.float64)
        with pytest.warns(RuntimeWarning, match="C\\+\\+ compiler"):
            y = A.batch_norm_train(x, None, None, impl="compiled")[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the notice is given once, not per call
            y2 = A.batch_norm_train(x, None, None, impl="compiled")[0]
        ref = A.batch_norm_train(x, None, None, impl="fast")[0]
        assert torch.equal(y, ref) and torch.equal(y2, ref)
    finally:
        A._compiled.cache_clear()
        A.has_compiler.cache_clear()


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_vmap_rule_with_unbatched_affine_and_another_run_dim(impl):
    """The vmap rule (R runs as R*C channels) against a plain loop over runs: the run dimension
    of x at position 1, gamma shared by every run (not batched), beta batched."""
    g = torch.Generator().manual_seed(4)
    R, N, C = 3, 5, 4
    x = torch.randn(N, R, C, 2, generator=g, dtype=torch.float64).requires_grad_()  # runs on dim 1
    gamma = (torch.rand(C, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    beta = torch.randn(R, C, generator=g, dtype=torch.float64).requires_grad_()

    def bn(xr, gr, br):
        return A.batch_norm_train(xr, gr, br, 1e-5, impl)

    y, mu, var = vmap(bn, in_dims=(1, None, 0))(x, gamma, beta)  # (R, N, C, 2), (R, C), (R, C)
    loops = [A.batch_norm_train(x[:, r], gamma, beta[r], 1e-5, impl) for r in range(R)]
    for r, (yr, mur, varr) in enumerate(loops):
        assert (y[r] - yr).abs().max().item() <= 1e-12
        assert (mu[r] - mur).abs().max().item() <= 1e-12 and (var[r] - varr).abs().max().item() <= 1e-12
    dy = torch.randn(R, N, C, 2, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((y * dy).sum(), (x, gamma, beta))
    ref = torch.autograd.grad(sum((yr * dy[r]).sum() for r, (yr, _, _) in enumerate(loops)), (x, gamma, beta))
    for a, b in zip(grads, ref):
        assert (a - b).abs().max().item() <= 1e-12
