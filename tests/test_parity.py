"""Parity with torch 2.13's BatchNorm1d/2d/3d: torch's own module test inputs, every constructor
argument, empty batches, memory formats, half precision, state dicts, errors.

torch's inputs come from `torch.testing._internal.common_modules.module_db` (constructor
arguments + forward inputs, training and eval), run in float64 through both modules.
"""

import pytest
import torch
from torch import nn

import bnpaper
from bnpaper.layers import BatchNorm1d, BatchNorm2d, BatchNorm3d

module_db = pytest.importorskip("torch.testing._internal.common_modules").module_db

OURS = {nn.BatchNorm1d: BatchNorm1d, nn.BatchNorm2d: BatchNorm2d, nn.BatchNorm3d: BatchNorm3d}
TOL = 1e-12


def torch_samples():
    """(id, torch class, args, kwargs, input, training) for every BatchNorm sample in module_db."""
    out = []
    for info in module_db:
        if info.module_cls not in OURS:
            continue
        for training in (True, False):
            inputs = info.module_inputs_func(
                info, device="cpu", dtype=torch.float64, requires_grad=True, training=training
            )
            for i, s in enumerate(inputs):
                name = f"{info.module_cls.__name__}-{s.desc or i}-{'train' if training else 'eval'}"
                out.append((name, info.module_cls, s.constructor_input, s.forward_input, training))
    return out


SAMPLES = torch_samples()


def test_every_torch_sample_is_collected():
    assert len(SAMPLES) == 44  # 22 constructor/input pairs x {train, eval} in torch 2.13


def _max_diff(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return 0.0
    return (a - b).abs().max().item() if a.numel() else 0.0


@pytest.mark.parametrize("name,cls,ctor,fwd,training", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_torch_module_inputs(name, cls, ctor, fwd, training):
    torch.manual_seed(0)
    ref = cls(*ctor.args, **ctor.kwargs).double()
    ours = OURS[cls](*ctor.args, **ctor.kwargs).double()
    with torch.no_grad():  # non-trivial parameters and running statistics
        for p in ref.parameters():
            p.uniform_(0.5, 1.5)
        if ref.running_mean is not None:
            ref.running_mean.uniform_(-1, 1), ref.running_var.uniform_(0.5, 2)
    ours.load_state_dict(ref.state_dict())
    ref.train(training), ours.train(training)
    (x,) = fwd.args
    xr, xo = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    yr, yo = ref(xr), ours(xo)
    assert yo.shape == yr.shape and _max_diff(yo, yr) <= TOL
    dy = torch.randn_like(yr)
    yr.backward(dy), yo.backward(dy)
    assert _max_diff(xo.grad, xr.grad) <= TOL
    for (n, po), pr in zip(ours.named_parameters(), ref.parameters()):
        assert _max_diff(po.grad, pr.grad) <= 1e-10, n
    for (n, bo), br in zip(ours.named_buffers(), ref.buffers()):
        assert _max_diff(bo.double(), br.double()) <= TOL, n


@pytest.mark.parametrize("kwargs", [{"bias": False}, {"affine": False}, {"momentum": None}, {"eps": 1e-3}])
def test_state_dict_both_directions(kwargs):
    ref, ours = nn.BatchNorm2d(4, **kwargs), BatchNorm2d(4, **kwargs)
    assert list(ref.state_dict()) == list(ours.state_dict())
    x = torch.randn(5, 4, 3, 3) * 3 + 2
    ref(x)  # running statistics move
    ours.load_state_dict(ref.state_dict())
    back = nn.BatchNorm2d(4, **kwargs)
    back.load_state_dict(ours.state_dict())
    for a, b in zip(back.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("impl", ["fast", "reference", "traced"])
def test_channels_last_and_noncontiguous(impl):
    torch.manual_seed(1)
    base = torch.randn(6, 5, 4, 7, dtype=torch.float64)
    inputs = {
        "channels_last": base.to(memory_format=torch.channels_last),
        "transposed": base.transpose(2, 3).contiguous().transpose(2, 3),
        "sliced": torch.randn(6, 10, 4, 7, dtype=torch.float64)[:, ::2],
    }
    for name, x in inputs.items():
        ref, ours = nn.BatchNorm2d(5).double(), BatchNorm2d(5, impl=impl).double()
        xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
        yr, yo = ref(xr), ours(xo)
        assert (yo - yr).abs().max().item() <= TOL, name
        assert yo.is_contiguous(memory_format=torch.channels_last) == yr.is_contiguous(
            memory_format=torch.channels_last
        ), name
        dy = torch.randn_like(yr)
        yr.backward(dy), yo.backward(dy)
        assert (xo.grad - xr.grad).abs().max().item() <= TOL, name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("impl", ["fast", "reference", "traced"])
def test_low_precision_keeps_float32_statistics(dtype, impl):
    torch.manual_seed(2)
    x = (torch.randn(16, 3, 5, 5) * 4 + 10).to(dtype)
    ref, ours = nn.BatchNorm2d(3), BatchNorm2d(3, impl=impl)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yo = ref(xr), ours(xo)
    assert yo.dtype == yr.dtype == dtype and ours.running_mean.dtype == torch.float32
    # both compute in float32 and round once to dtype: at most one unit in the last place apart
    ulp = {torch.float16: 2**-10, torch.bfloat16: 2**-7}[dtype]
    assert (yo.float() - yr.float()).abs().max().item() <= 2 * ulp * yr.float().abs().max().item()
    assert (ours.running_mean - ref.running_mean).abs().max().item() <= 1e-5
    assert (ours.running_var - ref.running_var).abs().max().item() <= 1e-4
    dy = torch.randn_like(yr)
    yr.backward(dy), yo.backward(dy)
    assert xo.grad.dtype == dtype and ours.weight.grad.dtype == torch.float32
    assert (
        ours.weight.grad - ref.weight.grad
    ).abs().max().item() <= 1e-2 * ref.weight.grad.abs().max().item()
    ours.eval(), ref.eval()
    assert (ours(x).float() - ref(x).float()).abs().max().item() <= 2 * ulp * ref(
        x
    ).float().abs().max().item()


@pytest.mark.parametrize(
    "cls,ours_cls,shape",
    [
        (nn.BatchNorm1d, BatchNorm1d, (2, 3, 4, 5)),
        (nn.BatchNorm2d, BatchNorm2d, (2, 3, 4)),
        (nn.BatchNorm3d, BatchNorm3d, (2, 3, 4, 4)),
    ],
)
def test_wrong_rank_raises_like_torch(cls, ours_cls, shape):
    x = torch.randn(shape)
    with pytest.raises(ValueError) as ref_err:
        cls(3)(x)
    with pytest.raises(ValueError) as our_err:
        ours_cls(3)(x)
    assert str(our_err.value) == str(ref_err.value)  # "expected 4D input (got 3D input)"


def test_one_value_per_channel_raises_like_torch():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3)(torch.randn(1, 3))


def test_top_level_exports():
    assert bnpaper.BatchNorm2d is BatchNorm2d and issubclass(BatchNorm2d, bnpaper.BatchNorm)
