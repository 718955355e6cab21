"""The dual Gaussian N(0, M^-1) of the Hilbert norms: its covariance against the norm's own
dual assembled as a dense float64 matrix, Monte Carlo on larger sizes, and its refusals."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lipreg import L2, Lp, Norm, Sobolev
from lipreg.norms import Wasserstein2


def dual_matrix(norm: Norm, shape: tuple[int, ...], at: torch.Tensor | None) -> torch.Tensor:
    """The matrix ``C`` with ``norm.dual_squared(g) = g^T C g`` on flattened samples of
    ``shape``, by polarisation of the norm's own values: ``C_ij = (q(e_i + e_j) - q(e_i) -
    q(e_j)) / 2`` (float64)."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64)
    pairs = (eye[:, None, :] + eye[None, :, :]).reshape(n * n, *shape)

    def q(v: torch.Tensor) -> torch.Tensor:
        base = None if at is None else at.expand(v.shape[0], *shape)
        return norm.dual_squared(v, at=base)

    single = q(eye.reshape(n, *shape))
    return (q(pairs).reshape(n, n) - single[:, None] - single[None, :]) / 2


@contextmanager
def noise_as_leaves() -> Iterator[list[torch.Tensor]]:
    """``torch.randn`` returns zeros that require grad, recorded in the yielded list: a draw
    is then a linear map ``L`` of them at 0, and gradients of ``<g, h>`` give ``L^T g``."""
    leaves: list[torch.Tensor] = []
    real = torch.randn

    def fake(*size: object, generator: object = None, **kwargs: object) -> torch.Tensor:
        shape = size[0] if len(size) == 1 else size
        z = torch.zeros(shape, **kwargs).requires_grad_(True)  # type: ignore[call-overload]
        leaves.append(z)
        return z

    torch.randn = fake  # type: ignore[assignment]
    try:
        yield leaves
    finally:
        torch.randn = real


def draw_covariance(norm: Norm, shape: tuple[int, ...], at: torch.Tensor | None) -> torch.Tensor:
    """``Cov(h) = L L^T`` of ``norm.dual_gaussian`` on flattened samples of ``shape``: sample
    ``i`` of a batch of ``n`` draws gives row ``L^T e_i`` (every noise tensor the draw uses)."""
    n = math.prod(shape)
    like = torch.zeros(n, *shape, dtype=torch.float64)
    base = None if at is None else at.expand(n, *shape)
    with noise_as_leaves() as leaves:
        h = norm.dual_gaussian(like, at=base)
    g = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    grads = torch.autograd.grad((g * h).sum(), leaves)
    rows = torch.cat([r.reshape(n, -1) for r in grads], dim=1)
    return rows @ rows.T


def assert_covariance_is_the_dual(norm: Norm, shape: tuple[int, ...], at: torch.Tensor | None):  # type: ignore[no-untyped-def]
    expected = dual_matrix(norm, shape, at)
    covariance = draw_covariance(norm, shape, at)
    torch.testing.assert_close(covariance, expected, rtol=1e-9, atol=1e-9 * expected.abs().max())
    like = torch.zeros(2, *shape, dtype=torch.float64)
    base = None if at is None else at.expand(2, *shape)
    variance = norm.dual_gaussian_variance(like, at=base)
    mean_trace = torch.diagonal(expected).mean()
    torch.testing.assert_close(variance, mean_trace.expand(2), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("norm", "shape"),
    [
        (L2(), (2, 3, 4)),
        (Lp(2), (5,)),
        (Sobolev(s=-1.5), (2, 4, 5)),
        (Sobolev(s=1.0, c=2.0), (1, 5, 3)),
        (Sobolev(s=-1.0, spatial_dims=1), (2, 7)),
        (Sobolev(s=-2.0, spatial_dims=1), (1, 8)),
        (Sobolev(s=0.5, c=3.0, spatial_dims=3), (1, 2, 3, 3)),
        (Sobolev(s=0.0), (1, 3, 3)),
    ],
    ids=str,
)
def test_covariance_is_the_inverse_metric_of_the_dual(norm: Norm, shape: tuple[int, ...]) -> None:
    assert norm.hilbert
    assert_covariance_is_the_dual(norm, shape, None)


@settings(max_examples=25, deadline=None)
@given(
    s=st.floats(-3, 3),
    c=st.floats(0.2, 10),
    dims=st.integers(1, 3),
    sizes=st.lists(st.integers(2, 5), min_size=3, max_size=3),
)
def test_sobolev_covariance_for_any_s_c_and_size(
    s: float, c: float, dims: int, sizes: list[int]
) -> None:
    shape = (1, *sizes[:dims])
    assert_covariance_is_the_dual(Sobolev(s=s, c=c, spatial_dims=dims), shape, None)


@pytest.mark.parametrize("gamma_l2", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(1, 3, 4), (2, 4, 3)])
def test_wasserstein2_covariance_is_its_metric_at_the_base_point(
    gamma_l2: float, shape: tuple[int, ...]
) -> None:
    at = torch.rand(1, *shape, dtype=torch.float64) * 2.4 - 1.2  # some pixels at density 0
    assert_covariance_is_the_dual(Wasserstein2(gamma_l2=gamma_l2), shape, at)


@settings(max_examples=8, deadline=None)
@given(
    s=st.floats(-2.5, 2.5),
    c=st.floats(0.5, 8),
    dims=st.integers(1, 3),
    sizes=st.lists(st.integers(5, 17), min_size=3, max_size=3),
)
def test_monte_carlo_second_moment_on_larger_sizes(
    s: float, c: float, dims: int, sizes: list[int]
) -> None:
    """``mean <g, h>^2`` over many draws is ``dual(g)^2`` within 5 standard errors, and the
    mean square entry is ``dual_gaussian_variance``."""
    shape = (2, *sizes[:dims])
    if dims == 3:
        shape = (1, *[min(k, 8) for k in sizes])
    norm = Sobolev(s=s, c=c, spatial_dims=dims)
    draws = 4000
    g = torch.randn(1, *shape, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    h = norm.dual_gaussian(torch.zeros(draws, *shape, dtype=torch.float64), generator=gen)
    products = (g * h).flatten(1).sum(1).square()
    expected = norm.dual_squared(g)[0]
    # <g, h> is Gaussian, so <g, h>^2 has standard deviation sqrt(2) times its mean.
    assert abs(products.mean() - expected) < 5 * math.sqrt(2 / draws) * expected
    variance = norm.dual_gaussian_variance(h[:1])[0]
    spread = h.square().mean(0).flatten().std() / math.sqrt(h[0].numel())
    assert abs(h.square().mean() - variance) < 8 * (math.sqrt(2 / draws) * variance + spread)


def test_monte_carlo_wasserstein2_on_an_image() -> None:
    norm = Wasserstein2(gamma_l2=0.1)
    at = torch.rand(1, 3, 12, 10, dtype=torch.float64) * 2 - 1
    g = torch.randn(1, 3, 12, 10, dtype=torch.float64)
    draws = 4000
    like = torch.zeros(draws, 3, 12, 10, dtype=torch.float64)
    h = norm.dual_gaussian(like, at=at.expand_as(like))
    products = (g * h).flatten(1).sum(1).square()
    expected = norm.dual_squared(g, at=at)[0]
    assert abs(products.mean() - expected) < 5 * math.sqrt(2 / draws) * expected


def test_generator_dtype_and_device() -> None:
    norm = Sobolev(s=-1.5)
    like = torch.zeros(3, 2, 6, 5)
    a = norm.dual_gaussian(like, generator=torch.Generator().manual_seed(3))
    b = norm.dual_gaussian(like, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == like.shape and a.dtype == torch.float32
    assert not torch.equal(a, norm.dual_gaussian(like))
    half = norm.dual_gaussian(like.half(), generator=torch.Generator().manual_seed(3))
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), a, rtol=1e-3, atol=1e-3)
    assert norm.dual_gaussian_variance(like.half()).dtype == torch.float32


@pytest.mark.parametrize("norm", [Lp(1), Lp(10), Lp(math.inf), Sobolev(s=-1.5, p=3)], ids=str)
def test_non_hilbert_norms_are_refused_naming_the_hilbert_norms(norm: Norm) -> None:
    assert not norm.hilbert
    like = torch.zeros(2, 1, 4, 4)
    for method in (norm.dual_gaussian, norm.dual_gaussian_variance):
        with pytest.raises(ValueError, match=r"Hilbert norm.*L2\(\), Sobolev\(s, p=2\)"):
            method(like)


def test_inputs_are_checked() -> None:
    with pytest.raises(TypeError, match="local norm"):
        Wasserstein2().dual_gaussian(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="layout"):
        Sobolev(s=1).dual_gaussian(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="base point"):
        L2().dual_gaussian(torch.zeros(2, 3), at=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="floating"):
        L2().dual_gaussian_variance(torch.zeros(2, 3, dtype=torch.long))


class WrongDraws(L2):
    """A Hilbert norm whose draws and variances have the wrong shape."""

    def _dual_gaussian(self, like, generator, at):  # type: ignore[no-untyped-def]
        return like[:1]

    def _dual_gaussian_variance(self, like, at):  # type: ignore[no-untyped-def]
        return like.flatten(1)


def test_a_norm_with_wrong_draws_is_named() -> None:
    like = torch.zeros(3, 2, 4)
    with pytest.raises(ValueError, match=r"WrongDraws._dual_gaussian must return a draw shaped"):
        WrongDraws().dual_gaussian(like)
    with pytest.raises(ValueError, match=r"WrongDraws._dual_gaussian_variance must return one"):
        WrongDraws().dual_gaussian_variance(like)
