"""DRAGAN sampling: the reference code's perturbation, and the DRAGAN penalty as BanachGP."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ConvCritic, assert_same_grads
from lipreg import BanachGP
from lipreg.sampling import dragan, dragan_interpolate


def dragan_gp(critic: nn.Module, x: torch.Tensor, lambda_: float = 10.0) -> torch.Tensor:
    """DRAGAN's penalty as in the reference code (perturbation with NumPy's population std,
    then a per-sample point on the segment to it), written with autograd."""
    x_p = x + 0.5 * float(np.std(x.numpy())) * torch.rand(x.size())
    alpha = torch.rand(x.size(0), 1, 1, 1)
    interpolates = (x + alpha * (x_p - x)).requires_grad_(True)
    out = critic(interpolates)
    (gradients,) = torch.autograd.grad(out, interpolates, torch.ones_like(out), create_graph=True)
    return lambda_ * ((gradients.view(x.size(0), -1).norm(2, dim=1) - 1) ** 2).mean()


def test_dragan_perturbation_matches_the_reference_formula() -> None:
    real = torch.rand(5, 3, 4, 4) * 2 - 1
    torch.manual_seed(1)
    got = dragan(real, None)
    torch.manual_seed(1)
    u = torch.rand(5, 3, 4, 4).numpy()
    expected = real.numpy() + 0.5 * np.std(real.numpy()) * u  # one std over the whole batch
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-6)
    offset = (got - real) / (0.5 * np.std(real.numpy()))
    assert float(offset.min()) >= 0 and float(offset.max()) <= 1  # one-sided U[0, 1] noise


def test_dragan_interpolate_lies_on_the_segments() -> None:
    real = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    torch.manual_seed(2)
    got = dragan_interpolate(real, None)
    torch.manual_seed(2)
    perturbed = dragan(real, None)
    alpha = torch.rand(6, 1, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(got, real + alpha * (perturbed - real))


def test_dragan_penalty_is_banach_gp_with_dragan_sampling() -> None:
    critic = ConvCritic()
    twin = copy.deepcopy(critic)
    real = torch.rand(8, 3, 8, 8) * 2 - 1
    torch.manual_seed(5)
    expected = dragan_gp(critic, real)
    expected.backward()
    torch.manual_seed(5)
    got = BanachGP("l2", lam=10.0, gamma=1.0, sampling="dragan_interpolate")(twin, real)
    got.backward()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)
    assert_same_grads(twin, critic, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("sampling", ["dragan", "dragan_interpolate"])
def test_dragan_needs_no_fakes_and_works_in_any_norm(sampling: str) -> None:
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    value = BanachGP("sobolev:s=-1.5", lam="auto", gamma="auto", sampling=sampling)(
        ConvCritic(), real
    )
    assert value.ndim == 0 and torch.isfinite(value)
