"""Norm values, exact duals (against dense-matrix and convex-optimisation computations),
numerical stability, derivatives, validation and text specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special
from torch.autograd import gradcheck

from conftest import dense_filter, dense_sobolev
from lipreg import L2, Lp, Norm, Sobolev, parse_norm
from lipreg.norms import Wasserstein2, conjugate, sobolev_multiplier

P_VALUES = [1.0, 1.3, 2.0, 3.0, 10.0, math.inf]


def np_lp(x: np.ndarray, p: float) -> np.ndarray:
    return np.linalg.norm(x.reshape(x.shape[0], -1), ord=p, axis=1)


# ---------------------------------------------------------------- L^p values


@pytest.mark.parametrize("p", P_VALUES)
def test_lp_norm_and_dual_match_numpy(p: float) -> None:
    x = torch.randn(4, 2, 3, 5, dtype=torch.float64)
    norm = Lp(p)
    q = conjugate(p)
    assert 1 / p + 1 / q == pytest.approx(1.0)
    np.testing.assert_allclose(norm.norm(x).numpy(), np_lp(x.numpy(), p), rtol=1e-12)
    np.testing.assert_allclose(norm.dual(x).numpy(), np_lp(x.numpy(), q), rtol=1e-12)


def test_l2_is_the_wgan_gp_norm() -> None:
    g = torch.randn(5, 3, 4, 4)
    assert torch.equal(L2().norm(g), g.view(5, -1).norm(2, dim=1))
    assert torch.equal(L2().dual(g), g.view(5, -1).norm(2, dim=1))


def test_squared_dual_l2_is_the_hand_written_r1_sum_of_squares() -> None:
    """Bit for bit the ``g.square().sum([1, 2, 3])`` of StyleGAN2, R3GAN and rosinality, so that
    R1 with L2() reproduces them exactly; no square root, so smooth at g = 0 (the square of
    ``vector_norm`` has a NaN second derivative there)."""
    g = torch.randn(5, 3, 16, 16)
    assert torch.equal(L2().dual_squared(g), g.square().sum([1, 2, 3]))
    assert not torch.equal(L2().dual(g).square(), g.square().sum([1, 2, 3]))  # sqrt, then square
    zero = torch.zeros(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(L2().dual_squared(zero).sum(), zero, create_graph=True)
    (second,) = torch.autograd.grad(grad.sum(), zero)
    assert torch.equal(grad, torch.zeros_like(grad)) and torch.equal(
        second, 2 * torch.ones_like(zero)
    )


@pytest.mark.parametrize(
    "norm", [L2(), Lp(3), Lp(1), Sobolev(s=-1.5), Sobolev(s=1.0), Sobolev(s=1.0, p=3)], ids=str
)
def test_squared_dual_is_the_square_of_the_dual(norm: Norm) -> None:
    g = torch.randn(3, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(norm.dual_squared(g), norm.dual(g).square(), rtol=1e-12, atol=0)
    assert gradcheck(norm.dual_squared, (g,))
    with pytest.raises(ValueError, match="base point"):
        norm.dual_squared(g, at=g[:2])


@pytest.mark.parametrize(("p", "scale"), [(10.0, 1e-7), (30.0, 1e-3), (3.0, 1e25), (1.0001, 1.0)])
def test_lp_is_stable_in_float32(p: float, scale: float) -> None:
    x64 = torch.randn(3, 50, dtype=torch.float64) * scale
    x32 = x64.float()
    for value32, exponent in ((Lp(p).norm(x32), p), (Lp(p).dual(x32), conjugate(p))):
        # independent float64 reference through log-sum-exp: exp(logsumexp(e log|x|) / e)
        ref = np.exp(special.logsumexp(exponent * np.log(np.abs(x64.numpy())), axis=1) / exponent)
        np.testing.assert_allclose(value32.numpy(), ref, rtol=2e-5)
        assert value32.dtype == torch.float32
    naive = (x32.abs() ** p).sum(1) ** (1 / p)
    stable = Lp(p).norm(x32)
    assert torch.isfinite(stable).all() and (stable > 0).all()
    if p >= 10 or scale > 1e20:  # the unscaled formula under- or overflows here
        assert not torch.allclose(naive, stable, rtol=1e-3)


L2_LIKE = [L2(), Lp(2), Sobolev(s=0.5), Sobolev(s=-1.5, p=2), Wasserstein2(gamma_l2=0.1)]


@pytest.mark.parametrize("norm", L2_LIKE, ids=str)
@pytest.mark.parametrize("scale", [1e-30, 1e20, 1e36])
def test_p2_norms_neither_overflow_nor_underflow_in_float32(norm: Norm, scale: float) -> None:
    """Squares of float32 entries above about 1e19 overflow and below 1e-23 underflow; the
    norms and their duals are homogeneous, so they are evaluated on a power-of-two rescaling:
    the float32 values match float64 ones (Wasserstein2: its dual), with exact gradients."""
    x64 = torch.rand(3, 2, 4, 4, dtype=torch.float64) * 2 - 1
    base = (x64 + 1).float()  # a base point for the local norm, away from density 0
    at = {"at": base} if norm.local else {}
    for f in [norm.dual] if norm.local else [norm.norm, norm.dual]:
        x32 = (x64 * scale).float().requires_grad_(True)
        value = f(x32, **at)
        (grad,) = torch.autograd.grad(value.sum(), x32)
        reference = f(x64, **({"at": base.double()} if norm.local else {}))
        torch.testing.assert_close(value.double(), reference * scale, rtol=1e-5, atol=0)
        # the gradient is 0-homogeneous: that of the unscaled input
        unscaled = x64.float().requires_grad_(True)
        (expected,) = torch.autograd.grad(f(unscaled, **at).sum(), unscaled)
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


def test_l2_rescaling_keeps_values_bit_for_bit() -> None:
    """Dividing by a power of two is exact, so in range the value is torch's own l2 norm."""
    g = torch.randn(64, 300) * torch.logspace(-10, 10, 64).unsqueeze(1)
    assert torch.equal(L2().norm(g), torch.linalg.vector_norm(g, dim=1))


def test_sobolev_s_out_of_the_dtype_range_is_refused_naming_s() -> None:
    """(1 + 5 * 2)^(|s|/2) passes float32's range near |s| = 73: the multiplier of the norm or
    its dual would be inf, so a call is refused naming s, before any critic runs; float64
    has the range, and an s beyond even float64's is refused at construction."""
    x = torch.randn(2, 3, 8, 8)
    for s in (80.0, -80.0):
        norm = Sobolev(s=s)
        with pytest.raises(ValueError, match=rf"Sobolev s={s:g} is out of range for torch.float32"):
            norm.dual(x)
        with pytest.raises(ValueError, match="out of range"):
            norm.norm(x)
        value = norm.dual(x.double())
        assert torch.isfinite(value).all() and (value > 0).all()
    with pytest.raises(ValueError, match=r"Sobolev s=80 is out of range for torch\.float32"):
        sobolev_multiplier((8, 8), 80.0, 5.0, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match=r"Sobolev s=700 is out of range for torch\.float64"):
        Sobolev(s=700.0)
    # just inside the float32 range: finite, and as float64 computes it
    inside = Sobolev(s=-72.0)
    torch.testing.assert_close(inside.dual(x).double(), inside.dual(x.double()), rtol=1e-4, atol=0)


def test_lp_takes_inf_as_a_string_as_its_spec_does() -> None:
    assert Lp("inf") == Lp(math.inf) == parse_norm("lp:p=inf")
    assert Sobolev(s=1.0, p="inf").p == math.inf
    with pytest.raises(TypeError, match="or the string 'inf'"):
        Lp("10")  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [1.5, 3.0, 10.0])
def test_lp_zero_vector_has_zero_value_and_finite_gradient(p: float) -> None:
    x = torch.zeros(2, 6, requires_grad=True)
    for value in (Lp(p).norm(x), Lp(p).dual(x)):
        assert torch.equal(value.detach(), torch.zeros(2))
        (grad,) = torch.autograd.grad(value.sum(), x)
        assert torch.isfinite(grad).all()


def test_half_precision_inputs_are_computed_in_float32() -> None:
    x = torch.randn(2, 3, 8, 8).half()
    for norm in (L2(), Lp(10), Sobolev(s=-1.5)):
        assert norm.norm(x).dtype == torch.float32
        assert norm.dual(x.bfloat16()).dtype == torch.float32
        torch.testing.assert_close(norm.dual(x), norm.dual(x.float()))


# ---------------------------------------------------------------- Sobolev filter


def test_multiplier_follows_the_reference_grid() -> None:
    shape, s, c = (5, 6), -1.5, 5.0
    got = sobolev_multiplier(shape, s, c, torch.device("cpu"), torch.float64)
    assert got.shape == (5, 4)
    for i in range(5):
        for j in range(4):
            xi2 = (min(i, 5 - i) / 2) ** 2 + (min(j, 6 - j) / 3) ** 2
            assert got[i, j].item() == pytest.approx((1 + c * xi2) ** (s / 2), rel=1e-14)
    again = sobolev_multiplier(shape, s, c, torch.device("cpu"), torch.float64)
    assert again is got  # cached per (shape, exponent, c, device, dtype)
    assert (
        sobolev_multiplier(shape, s, c, torch.device("cpu"), torch.float32).dtype == torch.float32
    )


@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 2, 4, 6), (2, 1, 3, 3)])
def test_filter_matches_full_complex_fft_reference(shape: tuple[int, ...]) -> None:
    """The reference code's recipe: fft2 per channel, multiply, real part of ifft2."""
    x = torch.randn(shape, dtype=torch.float64)
    s, c = 1.3, 5.0
    h, w = shape[2:]
    ky = np.minimum(np.arange(h), h - np.arange(h)) / (h // 2)
    kx = np.minimum(np.arange(w), w - np.arange(w)) / (w // 2)
    mult = (1 + c * (ky[:, None] ** 2 + kx[None, :] ** 2)) ** (s / 2)
    ref = np.real(np.fft.ifft2(mult * np.fft.fft2(x.numpy(), axes=(2, 3)), axes=(2, 3)))
    np.testing.assert_allclose(Sobolev(s=s, c=c).filter(x, s).numpy(), ref, atol=1e-12)


def test_sobolev_with_s_zero_is_lp() -> None:
    x = torch.randn(3, 2, 5, 4, dtype=torch.float64)
    for p in (1.5, 2.0, 7.0):
        torch.testing.assert_close(Sobolev(s=0.0, p=p).norm(x), Lp(p).norm(x))
        torch.testing.assert_close(Sobolev(s=0.0, p=p).dual(x), Lp(p).dual(x))


SOBOLEV_CASES = [
    # (norm, per-sample shape)
    (Sobolev(s=-1.5, p=2.0), (2, 3, 5)),
    (Sobolev(s=1.0, p=2.0, c=2.0), (1, 4, 6)),
    (Sobolev(s=0.7, p=1.0), (1, 3, 4)),
    (Sobolev(s=-1.0, p=math.inf), (2, 2, 3)),
    (Sobolev(s=1.5, p=3.0), (1, 3, 5)),
    (Sobolev(s=-0.5, p=1.5, spatial_dims=1), (2, 7)),
    (Sobolev(s=2.0, p=4.0, spatial_dims=3), (1, 3, 2, 4)),
]


@pytest.mark.parametrize(("norm", "shape"), SOBOLEV_CASES, ids=lambda v: str(v).split(" [")[0])
def test_sobolev_norm_matches_dense_matrix(norm: Sobolev, shape: tuple[int, ...]) -> None:
    x = torch.randn((3, *shape), dtype=torch.float64)
    t = dense_sobolev(shape[1:], shape[0], norm.s, norm.c)
    ref = np_lp((x.numpy().reshape(3, -1) @ t.T), norm.p)
    np.testing.assert_allclose(norm.norm(x).numpy(), ref, rtol=1e-10)


def independent_dual(t: np.ndarray, g: np.ndarray, p: float) -> float:
    """sup_h <g, h> / ||T h||_p computed without the dual formula: closed form for p = 2,
    linear programmes for p = 1 and inf, a constrained minimisation otherwise."""
    n = g.size
    if p == 2:
        return float(np.sqrt(g @ np.linalg.solve(t.T @ t, g)))
    if p in (1, math.inf):
        # maximise g.h over h, with auxiliary u >= |T h| (p = 1: sum u <= 1; inf: u <= 1)
        cost = np.concatenate([-g, np.zeros(n)])
        a_abs = np.block([[t, -np.eye(n)], [-t, -np.eye(n)]])
        if p == 1:
            a_ub = np.vstack([a_abs, np.concatenate([np.zeros(n), np.ones(n)])])
            b_ub = np.concatenate([np.zeros(2 * n), [1.0]])
        else:
            a_ub = np.vstack([a_abs, np.hstack([np.zeros((n, n)), np.eye(n)])])
            b_ub = np.concatenate([np.zeros(2 * n), np.ones(n)])
        res = optimize.linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=(None, None), method="highs")
        assert res.status == 0
        return float(-res.fun)
    # 1 / min ||T h||_p subject to <g, h> = 1 (a convex problem)
    h0 = g / (g @ g)
    res = optimize.minimize(
        lambda h: np.sum(np.abs(t @ h) ** p) ** (1 / p),
        h0,
        constraints=[{"type": "eq", "fun": lambda h: g @ h - 1}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 2000},
    )
    return float(1 / res.fun)


@pytest.mark.parametrize(("norm", "shape"), SOBOLEV_CASES, ids=lambda v: str(v).split(" [")[0])
def test_sobolev_dual_matches_independent_optimisation(
    norm: Sobolev, shape: tuple[int, ...]
) -> None:
    g = torch.randn((2, *shape), dtype=torch.float64)
    t = dense_sobolev(shape[1:], shape[0], norm.s, norm.c)
    got = norm.dual(g).numpy()
    for b in range(2):
        rtol = 1e-8 if norm.p in (1, 2, math.inf) else 1e-4
        assert got[b] == pytest.approx(independent_dual(t, g[b].numpy().ravel(), norm.p), rel=rtol)


def hoelder_maximiser(t: np.ndarray, g: np.ndarray, p: float) -> np.ndarray:
    """h with <g, h> = ||T^-T g||_q ||T h||_p: T h is the Hoelder partner of u = T^-T g."""
    u = np.linalg.solve(t.T, g)
    q = conjugate(p)
    if math.isinf(q):  # p = 1: all mass on the largest |u_j|
        v = np.zeros_like(u)
        j = np.argmax(np.abs(u))
        v[j] = np.sign(u[j])
    else:
        v = np.sign(u) * np.abs(u) ** (q - 1)
    return np.linalg.solve(t, v)


NORM_CASES = [(Lp(p), (2, 3, 5)) for p in P_VALUES] + SOBOLEV_CASES


@pytest.mark.parametrize(("norm", "shape"), NORM_CASES, ids=lambda v: str(v).split(" [")[0])
def test_dual_is_attained_and_never_exceeded(norm: Norm, shape: tuple[int, ...]) -> None:
    g = torch.randn((1, *shape), dtype=torch.float64)
    t = dense_filter(norm, shape)
    dual = norm.dual(g).item()
    h_star = torch.from_numpy(hoelder_maximiser(t, g.numpy().ravel(), norm.p)).view_as(g)
    attained = (g * h_star).sum().item() / norm.norm(h_star).item()
    assert attained == pytest.approx(dual, rel=1e-9)
    # random directions, and perturbations of the maximiser, which come close to the bound
    noise = torch.randn((4000, *shape), dtype=torch.float64)
    near = h_star + 0.05 * h_star.abs().mean() * noise
    for h in (noise, near):
        ratios = (g * h).flatten(1).sum(1) / norm.norm(h)
        assert ratios.max().item() <= dual * (1 + 1e-12)
    assert ratios.max().item() > 0.9 * dual


# ---------------------------------------------------------------- derivatives


@pytest.mark.parametrize(
    "norm",
    [L2(), Lp(1.5), Lp(3), Lp(10), Sobolev(s=-1.5), Sobolev(s=1.0, p=3.0), Sobolev(s=0.5, p=4.0)],
    ids=str,
)
def test_gradcheck_norm_and_dual(norm: Norm) -> None:
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(norm.norm, (x,))
    assert gradcheck(norm.dual, (x,))


# ---------------------------------------------------------------- validation and names


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: Lp(0.5), ValueError, ["p must be in [1, inf]", "0.5"]),
        (lambda: Lp(float("nan")), ValueError, ["p must be in"]),
        (lambda: Lp(True), TypeError, ["p must be a real number"]),
        (lambda: Lp("10"), TypeError, ["p must be a real number"]),
        (lambda: Sobolev(s=float("inf")), ValueError, ["s must be in (-inf, inf)"]),
        (lambda: Sobolev(s=float("nan")), ValueError, ["s must be in"]),
        (lambda: Sobolev(s=1.0, c=0.0), ValueError, ["c must be in (0, inf)"]),
        (lambda: Sobolev(s=1.0, c=-1.0), ValueError, ["c must be in"]),
        (lambda: Sobolev(s=1.0, p=0.9), ValueError, ["p must be in [1, inf]"]),
        (lambda: Sobolev(s=1.0, spatial_dims=4), ValueError, ["spatial_dims must be 1"]),
    ],
)
def test_invalid_parameters_name_the_argument(make, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"every spatial size to be at least 2"):
        Sobolev(s=1.0).norm(torch.randn(2, 3, 1, 8))
    with pytest.raises(ValueError, match=r"layout \[B, C, H, W\]"):
        Sobolev(s=1.0).dual(torch.randn(2, 8, 8))
    with pytest.raises(ValueError, match=r"layout \[B, C, L\]"):
        Sobolev(s=1.0, spatial_dims=1).norm(torch.randn(2, 3, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        L2().norm(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch-first"):
        Lp(3).norm(torch.randn(5))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        L2().dual(np.ones((2, 3)))  # type: ignore[arg-type]


def test_repr_names_space_and_dual() -> None:
    assert repr(Sobolev(s=-1.5, p=2)) == (
        "Sobolev(s=-1.5, p=2, c=5, spatial_dims=2) [B = W^{-1.5,2}, B* = W^{1.5,2}]"
    )
    assert repr(Lp(10)) == "Lp(p=10) [B = L^10, B* = L^1.11111]"
    assert repr(Lp(1)) == "Lp(p=1) [B = L^1, B* = L^inf]"
    assert repr(L2()) == "L2() [B = L^2, B* = L^2]"
    assert Sobolev(s=2, p=math.inf).dual_space == "W^{-2,1}"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("l2", L2()),
        ("L2", L2()),
        ("lp:p=10", Lp(10)),
        (" lp : p = inf ", Lp(math.inf)),
        ("sobolev:s=-1.5", Sobolev(s=-1.5)),
        ("sobolev:s=-1.5,p=2,c=5", Sobolev(s=-1.5, p=2, c=5)),
        ("sobolev:c=3,s=1,spatial_dims=3", Sobolev(s=1, c=3, spatial_dims=3)),
    ],
)
def test_parse_norm(spec: str, expected: Norm) -> None:
    assert parse_norm(spec) == expected


@pytest.mark.parametrize(
    "norm", [L2(), Lp(1.25), Lp(math.inf), Sobolev(s=-1 / 3, p=10 / 7, c=0.1)], ids=str
)
def test_spec_round_trips(norm: Norm) -> None:
    assert parse_norm(norm.spec) == norm
    assert parse_norm(norm) is norm


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("l3", "unknown norm 'l3'"),
        ("lp", "lp needs p"),
        ("lp:q=2", "'q=2' is not key=value with a key of lp"),
        ("lp:p=2,p=3", "p is given twice"),
        ("lp:p=ten", "p='ten' is not a number"),
        ("sobolev:s=1,spatial_dims=1.5", "spatial_dims='1.5' is not an integer"),
        ("sobolev:p", "'p' is not key=value"),
        ("l2:p=2", "keys: none"),
    ],
)
def test_bad_specs_list_the_accepted_forms(spec: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_norm(spec)
    assert problem in str(info.value)
    assert '"lp:p=P"' in str(info.value) and "sobolev:s=S" in str(info.value)


def test_spec_values_out_of_range_raise_the_constructor_error() -> None:
    with pytest.raises(ValueError, match="c must be in"):
        parse_norm("sobolev:s=1,c=0")
    with pytest.raises(TypeError, match="text spec"):
        parse_norm(3)  # type: ignore[arg-type]
