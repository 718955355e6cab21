"""lipreg.integrations.r3gan against a stand-in with R3GAN's interface and formulas."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from conftest import dense_filter
from lipreg import BanachR1R2, Sobolev, rpgan_critic_loss
from lipreg.integrations.r3gan import ZeroCenteredGradientPenalty

sys.path.insert(0, str(Path(__file__).parent / "standins"))
host = importlib.import_module("r3gan_host")


class Generator(nn.Module):
    def __init__(self, z_dim: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(z_dim, 3 * 8 * 8)

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        return self.linear(z).tanh().view(-1, 3, 8, 8)


class Discriminator(nn.Module):
    """Scores ``[B]`` (R3GAN's discriminator returns ``x.view(B)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.linear = nn.Linear(4 * 8 * 8, 1)

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        h = nn.functional.leaky_relu(self.conv(x), 0.2).flatten(1)
        return self.linear(nn.functional.softplus(h)).view(x.shape[0])


class MixedGenerator(Generator):
    """Its last stage in bfloat16, as R3GAN's ``FP16Stages`` (every preset): bf16 samples."""

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        w, b = self.linear.weight.to(torch.bfloat16), self.linear.bias.to(torch.bfloat16)
        return nn.functional.linear(z.to(torch.bfloat16), w, b).tanh().view(-1, 3, 8, 8)


class MixedDiscriminator(Discriminator):
    """Its first stage in bfloat16 and its head in float32, as R3GAN's ``FP16Stages``."""

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        x = x.to(torch.bfloat16)
        w, b = self.conv.weight.to(x.dtype), self.conv.bias.to(x.dtype)
        h = nn.functional.leaky_relu(nn.functional.conv2d(x, w, b, padding=1), 0.2)
        return self.linear(nn.functional.softplus(h.flatten(1).float())).view(x.shape[0])


def augment(x: Tensor) -> Tensor:
    """A differentiable stand-in for R3GAN's augmentation (the gradient is taken before it)."""
    return 0.9 * x.flip(-1) + 0.05


def step(
    penalty: object,
    gamma: float = 0.05,
    preprocessor: object = None,
    dtype: torch.dtype = torch.float32,
    mixed: bool = False,
) -> tuple[list[Tensor], nn.Module]:
    """One discriminator step of the stand-in (with ``penalty`` installed unless None) on
    fixed networks and data (``mixed``: R3GAN's bfloat16 stages); its returned statistics and
    the discriminator."""
    torch.manual_seed(0)
    g, d = (MixedGenerator(), MixedDiscriminator()) if mixed else (Generator(), Discriminator())
    g, d = g.to(dtype), d.to(dtype)
    trainer = host.AdversarialTraining(g, d)
    noise, real = torch.randn(5, 4, dtype=dtype), torch.rand(5, 3, 8, 8, dtype=dtype) * 2 - 1
    extra = {} if preprocessor is None else {"Preprocessor": preprocessor}
    original = host.AdversarialTraining.__dict__["ZeroCenteredGradientPenalty"]
    if penalty is not None:
        host.AdversarialTraining.ZeroCenteredGradientPenalty = penalty
    try:
        out = trainer.AccumulateDiscriminatorGradients(noise, real, None, gamma, 0.5, **extra)
    finally:
        host.AdversarialTraining.ZeroCenteredGradientPenalty = original
    return out, d


@pytest.mark.parametrize("preprocessor", [None, augment], ids=["plain", "augmented"])
def test_l2_reproduces_r3gans_discriminator_step_bit_for_bit(preprocessor: object) -> None:
    expected, d_expected = step(None, preprocessor=preprocessor)
    got, d_got = step(ZeroCenteredGradientPenalty("l2"), preprocessor=preprocessor)
    for a, b in zip(got, expected, strict=True):  # loss, scores, R1, R2 per sample
        assert torch.equal(a, b)
    for p, q in zip(d_got.parameters(), d_expected.parameters(), strict=True):
        assert p.grad is not None and torch.equal(p.grad, q.grad)
    assert got[2].abs().sum() > 0 and got[3].abs().sum() > 0


def test_l2_in_r3gans_mixed_precision_gives_its_gradients_bit_for_bit() -> None:
    """Under R3GAN's FP16Stages the generated samples, their gradient and R3GAN's R2 are
    bfloat16. The adapter returns R2 in bfloat16 too (the float32 sum of squares, rounded
    once), so the discriminator's gradients are R3GAN's bit for bit; R3GAN's R2 rounds each
    square before summing, so a value may differ from it by one bfloat16 unit."""
    expected, d_expected = step(None, mixed=True)
    got, d_got = step(ZeroCenteredGradientPenalty("l2"), mixed=True)
    for a, b in zip(got[:3], expected[:3], strict=True):  # loss, scores, R1 (float32 reals)
        assert torch.equal(a, b)
    r2, host_r2 = got[3], expected[3]
    assert r2.dtype == host_r2.dtype == torch.bfloat16
    bits = (r2.view(torch.int16).int() - host_r2.view(torch.int16).int()).abs()
    assert int(bits.max()) <= 1
    for p, q in zip(d_got.parameters(), d_expected.parameters(), strict=True):
        assert p.grad is not None and torch.equal(p.grad, q.grad)
    assert got[3].abs().sum() > 0

    # R2 itself: the float32 sum of the squares of the bf16 gradient, rounded to bf16 once.
    torch.manual_seed(0)
    g, d = MixedGenerator(), MixedDiscriminator()
    fake = g(torch.randn(5, 4), None).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(fake, None).sum(), fake)
    assert grad.dtype == torch.bfloat16
    assert torch.equal(r2, grad.float().square().sum([1, 2, 3]).to(torch.bfloat16))


def test_another_norm_changes_the_step_by_its_dual_norms() -> None:
    """R1 and R2 in W^{1,2}: per sample g^T T^2 g with T the dense dual filter, the rest of
    R3GAN's step unchanged."""
    norm = Sobolev(s=1.0)
    (_, scores, r1, r2), _ = step(ZeroCenteredGradientPenalty(norm), dtype=torch.float64)
    (_, plain_scores, *_), _ = step(None, dtype=torch.float64)
    assert torch.equal(scores, plain_scores)
    torch.manual_seed(0)
    g, d = Generator().double(), Discriminator().double()
    noise, real = (
        torch.randn(5, 4, dtype=torch.float64),
        torch.rand(5, 3, 8, 8, dtype=torch.float64) * 2 - 1,
    )
    fake = g(noise, None).detach()
    t = torch.from_numpy(dense_filter(norm, (3, 8, 8), dual=True))
    for x, got in ((real, r1), (fake, r2)):
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x, None).sum(), x)
        torch.testing.assert_close(got, (grad.flatten(1) @ t.T).square().sum(1), rtol=1e-10, atol=0)


@pytest.mark.parametrize("norm", ["l2", "lp:p=3", "sobolev:s=-1"])
def test_the_step_is_lipregs_rpgan_loss_plus_banach_r1r2(norm: str) -> None:
    """R3GAN's step with the adapter minimises rpgan_critic_loss + BanachR1R2 (Scale 0.5)."""
    _, d_host = step(ZeroCenteredGradientPenalty(norm), gamma=0.3)
    torch.manual_seed(0)
    g, d = Generator(), Discriminator()
    noise, real = torch.randn(5, 4), torch.rand(5, 3, 8, 8) * 2 - 1
    fake = g(noise, None).detach()

    def critic(x: Tensor) -> Tensor:
        return d(x, None)

    loss = rpgan_critic_loss(critic(real), critic(fake)) + BanachR1R2(norm, 0.3)(critic, real, fake)
    (0.5 * loss).backward()
    for p, q in zip(d.parameters(), d_host.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_local_norms_are_measured_at_the_samples() -> None:
    samples = (torch.rand(3, 1, 8, 8) * 2 - 1).double().requires_grad_(True)
    scores = (samples.flatten(1) ** 2).sum(1)
    penalty = ZeroCenteredGradientPenalty("w2:gamma_l2=0.1")
    got = penalty(samples, scores)
    expected = penalty.norm.dual_squared(2 * samples.detach(), at=samples.detach())
    torch.testing.assert_close(got, expected)


def test_clear_errors() -> None:
    penalty = ZeroCenteredGradientPenalty()
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"Samples must require grad.*AccumulateDiscriminator"):
        penalty(x, x.sum([1, 2, 3]))
    x.requires_grad_(True)
    with pytest.raises(ValueError, match="non-finite values"):
        penalty(x, (x * float("nan")).sum([1, 2, 3]))
    unchecked = ZeroCenteredGradientPenalty(check_finite=False)
    assert unchecked(x, (x * float("nan")).sum()).isnan().all()
    with pytest.raises(ValueError, match="unknown norm"):
        ZeroCenteredGradientPenalty("hilbert")
    with pytest.raises(ValueError, match=r"layout \[B, C, H, W\]"):
        ZeroCenteredGradientPenalty("sobolev:s=1")(x[:, 0, 0], x[:, 0, 0].sum(1))
    assert repr(ZeroCenteredGradientPenalty("lp:p=4")).startswith(
        "ZeroCenteredGradientPenalty(norm=Lp(p=4)"
    )
    assert copy.deepcopy(penalty).norm == penalty.norm
