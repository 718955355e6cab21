"""lipreg.integrations.rosinality against a stand-in with rosinality's R1 and lazy step."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from conftest import ConvCritic, dense_filter
from lipreg import BanachR1, Lazy, Sobolev
from lipreg.integrations.rosinality import R1Loss

sys.path.insert(0, str(Path(__file__).parent / "standins"))
host = importlib.import_module("rosinality_host")
gradfix = importlib.import_module("utils.style_ops.conv2d_gradfix")  # counts op.conv2d_gradfix too


def augment(x: Tensor) -> Tensor:
    """A differentiable stand-in for the host's non-leaking augmentation."""
    return 0.9 * x.flip(-1) + 0.05


def lazy_training(loss: object, steps: int = 5, d_reg_every: int = 2) -> tuple[nn.Module, list]:  # type: ignore[type-arg]
    """``steps`` of the host's lazy R1 (with ``loss`` as its ``d_r1_loss`` unless None) on
    one fixed critic and batch stream; the critic and the R1 values."""
    torch.manual_seed(0)
    critic = ConvCritic()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    batches = [torch.rand(4, 3, 8, 8) * 2 - 1 for _ in range(steps)]
    original = host.d_r1_loss
    if loss is not None:
        host.d_r1_loss = loss
    try:
        values = [
            host.regularise(i, real, critic, opt, r1=10.0, d_reg_every=d_reg_every, augment=augment)
            for i, real in enumerate(batches)
        ]
    finally:
        host.d_r1_loss = original
    return critic, values


def test_l2_reproduces_the_hosts_lazy_r1_bit_for_bit() -> None:
    entered = gradfix.entered
    expected, expected_values = lazy_training(None)
    got, values = lazy_training(R1Loss("l2"))
    assert gradfix.entered == entered + 6  # 3 due steps of 5, in both runs
    assert [v is None for v in values] == [False, True, False, True, False]
    for a, b in zip(values, expected_values, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    for p, q in zip(got.parameters(), expected.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("norm", ["l2", "sobolev:s=-1", "lp:p=3"])
def test_the_hosts_lazy_term_is_lipregs_lazy_banach_r1(norm: str) -> None:
    """``r1 / 2 * d_r1_loss * d_reg_every`` on due steps = ``Lazy(BanachR1(norm, r1), every)``."""
    torch.manual_seed(0)
    critic = ConvCritic().double()
    lazy = Lazy(BanachR1(norm, gamma=10.0), every=3)
    loss = R1Loss(norm)
    for step in range(4):
        real = torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1
        expected = lazy(critic, real)
        if step % 3:
            assert expected.item() == 0.0
            continue
        real_img = real.clone().requires_grad_(True)
        got = 10.0 / 2 * loss(critic(real_img), real_img) * 3
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_sobolev_r1_against_a_dense_computation() -> None:
    torch.manual_seed(0)
    critic = ConvCritic().double()
    real_img = (torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    pred = critic(augment(real_img))
    got = R1Loss(Sobolev(s=-1.5))(pred, real_img)
    (grad,) = torch.autograd.grad(pred.sum(), real_img)
    t = torch.from_numpy(dense_filter(Sobolev(s=-1.5), (3, 8, 8), dual=True))
    expected = (grad.flatten(1) @ t.T).square().sum(1).mean()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)


def test_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    loss = R1Loss()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"real_img must require grad.*requires_grad = True"):
        loss(x.sum([1, 2, 3]), x)
    x.requires_grad_(True)
    with pytest.raises(ValueError, match="non-finite values"):
        loss((x * float("inf")).sum([1, 2, 3]), x)
    with pytest.raises(ValueError, match="unknown norm"):
        R1Loss("hilbert")
    assert repr(R1Loss("sobolev:s=1")).startswith("R1Loss(norm=Sobolev(")
    monkeypatch.setitem(sys.modules, "op.conv2d_gradfix", None)  # import raises ImportError
    with pytest.raises(ImportError, match=r"run train\.py from the repository's root"):
        loss(x.sum([1, 2, 3]), x)
