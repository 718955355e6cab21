"""lipreg.integrations.rosinality against a stand-in with rosinality's R1 and lazy step."""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from conftest import ConvCritic, dense_filter
from lipreg import L2, BanachR1, Lazy, Norm, Sobolev
from lipreg.integrations.rosinality import ApproxR1Loss, R1Loss

sys.path.insert(0, str(Path(__file__).parent / "standins"))
host = importlib.import_module("rosinality_host")
gradfix = importlib.import_module("utils.style_ops.conv2d_gradfix")  # counts op.conv2d_gradfix too


def augment(x: Tensor) -> Tensor:
    """A differentiable stand-in for the host's non-leaking augmentation."""
    return 0.9 * x.flip(-1) + 0.05


def lazy_training(
    loss: Callable[[nn.Module], object] | None,
    steps: int = 5,
    d_reg_every: int = 2,
    dtype: torch.dtype = torch.float32,
    augment_p: float | None = 0.5,
) -> tuple[nn.Module, list]:  # type: ignore[type-arg]
    """``steps`` of the host's lazy R1 behind its random augmentation (with ``loss(critic)``
    as its ``d_r1_loss`` unless None, and the host's ``augment`` wrapped by the loss's
    ``replaying`` if it has one, as the two lines in ``__main__`` do) on one fixed critic and
    batch stream; the critic and the R1 values."""
    torch.manual_seed(0)
    critic = ConvCritic().to(dtype)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    batches = [torch.rand(4, 3, 8, 8, dtype=dtype) * 2 - 1 for _ in range(steps)]
    original, original_augment = host.d_r1_loss, host.augment
    if loss is not None:
        host.d_r1_loss = loss(critic)
        if hasattr(host.d_r1_loss, "replaying"):
            host.augment = host.d_r1_loss.replaying(host.augment)
    try:
        values = [
            host.regularise(i, real, critic, opt, 10.0, d_reg_every, augment_p)
            for i, real in enumerate(batches)
        ]
    finally:
        host.d_r1_loss, host.augment = original, original_augment
    return critic, values


def test_l2_reproduces_the_hosts_lazy_r1_bit_for_bit() -> None:
    entered = gradfix.entered
    expected, expected_values = lazy_training(None)
    got, values = lazy_training(lambda _: R1Loss("l2"))
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


# --------------------------------------------- derivative-free R1 (ApproxR1Loss)


class HandWritten:
    """``d_r1_loss`` written out from the estimator's formula (one-sided, ``real_pred`` as
    ``D(x)``), the transforms of the host's last ``augment`` applied again at ``x + h``."""

    def __init__(self, critic: nn.Module, norm: Norm, sigma: float, draws: int) -> None:
        self.critic, self.norm, self.sigma, self.draws = critic, norm, sigma, draws
        self.last: tuple[Callable[..., Any], float, Any] | None = None

    def replaying(self, augment: Callable[..., Any]) -> Callable[..., Any]:
        def recording(img: Tensor, p: float, transform_matrix: Any = (None, None)) -> Any:
            out, transforms = augment(img, p, transform_matrix)
            self.last = (augment, p, transforms)
            return out, transforms

        return recording

    def __call__(self, real_pred: Tensor, real_img: Tensor) -> Tensor:
        x = real_img.detach()
        v = self.norm.dual_gaussian_variance(x).view(-1, 1, 1, 1)
        total = torch.zeros(x.shape[0], dtype=x.dtype)
        for _ in range(self.draws):
            points = x + self.sigma * self.norm.dual_gaussian(x) / v.sqrt()
            if self.last is not None:
                augment, p, transforms = self.last
                points = augment(points, p, transforms)[0]
            total = total + (self.critic(points) - real_pred).square().flatten()
        return (total * v.flatten() / (self.draws * self.sigma**2)).mean()


@pytest.mark.parametrize(
    ("norm", "augment_p"), [(L2(), 0.5), (Sobolev(s=-1.5), 0.5), (L2(), None)], ids=str
)
def test_approx_r1_loss_is_the_hand_written_estimate_in_the_hosts_lazy_step(
    norm: Norm, augment_p: float | None
) -> None:
    """Five lazy steps (three regularising) behind the host's random augmentation: R1 values
    and parameters equal those of the estimate written out (float64, same seed)."""

    def approx(critic: nn.Module) -> ApproxR1Loss:
        return ApproxR1Loss(critic, norm, sigma=0.05, draws=2)

    def by_hand(critic: nn.Module) -> HandWritten:
        return HandWritten(critic, norm, 0.05, 2)

    got, values = lazy_training(approx, dtype=torch.float64, augment_p=augment_p)
    expected, expected_values = lazy_training(by_hand, dtype=torch.float64, augment_p=augment_p)
    assert [v is None for v in values] == [False, True, False, True, False]
    for a, b in zip(values, expected_values, strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-12, atol=0)
    for p, q in zip(got.parameters(), expected.parameters(), strict=True):
        # Adam's first steps divide by the gradients' own size: rounding differences of
        # 1e-16 in near-zero entries grow to 1e-8 of the parameters
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-9)


def test_approx_r1_loss_converges_to_the_hosts_r1_only_when_the_augmentation_is_replayed() -> None:
    """With many antithetic draws at small sigma the estimate approaches the host's R1 at
    the transforms it drew; drawing new transforms at x + h makes it orders too large."""
    torch.manual_seed(0)
    critic = ConvCritic().double()
    real_img = (torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    draws = 100
    loss = ApproxR1Loss(critic, sigma=1e-3, draws=draws, antithetic=True)
    augment = loss.replaying(host.augment)
    real_pred = critic(augment(real_img, 0.5)[0])
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img)
    exact = grad.square().flatten(1).sum(1)
    got = loss(real_pred, real_img)
    # each sample's estimate: exact_b chi^2_1 averaged over the draws
    error = math.sqrt(2 / draws * exact.square().sum().item()) / len(exact)
    assert abs(got.item() - exact.mean().item()) < 5 * error

    class Fresh(nn.Module):  # new transforms at every evaluation
        def forward(self, x: Tensor) -> Tensor:
            out: Tensor = critic(host.augment(x, 0.5)[0])
            return out

    unreplayed = ApproxR1Loss(Fresh(), sigma=1e-3, draws=4, antithetic=True)
    unreplayed.replaying(host.augment)
    assert unreplayed(real_pred, real_img).item() > 100 * exact.mean().item()


def test_approx_r1_loss_requires_the_augment_wrapper_and_names_its_line() -> None:
    critic = ConvCritic()
    real_img = (torch.rand(4, 3, 8, 8) * 2 - 1).requires_grad_(True)
    loss = ApproxR1Loss(critic, "sobolev:s=-1.5", sigma=0.1)
    with pytest.raises(RuntimeError, match=r"augment = d_r1_loss\.replaying\(augment\)"):
        loss(critic(real_img), real_img)
    augment = loss.replaying(host.augment)
    augment(real_img.detach(), 0.5)  # the last call is on another tensor
    with pytest.raises(RuntimeError, match="last call of the host's augment was not on real_img"):
        loss(critic(real_img), real_img)
    real_pred = critic(augment(real_img, 0.5)[0])
    assert loss(real_pred, real_img).requires_grad
    stats = loss.penalty.stats
    assert stats is not None and float(stats.gamma) == 2.0
    with pytest.raises(ValueError, match="NaN or inf"):
        loss(real_pred * float("nan"), real_img)
    with pytest.raises(TypeError, match=r"needs the host's discriminator, an nn.Module"):
        ApproxR1Loss(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ApproxR1 needs a Hilbert norm"):
        ApproxR1Loss(critic, "lp:p=3")
    with pytest.raises(TypeError, match="takes the host's augment function"):
        loss.replaying(None)  # type: ignore[arg-type]
    assert repr(loss) == (
        f"ApproxR1Loss(norm={Sobolev(s=-1.5)!r}, sigma=0.1, draws=1, antithetic=False)"
    )
