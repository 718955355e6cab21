"""The FFT operator norm of convolutions against the dense matrices of the layers themselves
(built by applying them to every basis vector, float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd import gradcheck

from conftest import dense_norm
from lipreg.spectral import ConvGeometry, circular_conv_norm, conv_lipschitz_bound

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def circular_layer(weight: torch.Tensor, dilation: int, groups: int) -> nn.Module:
    """Stride-1 circular convolution written out with F.pad + F.conv (no nn.Conv padding)."""
    dims = weight.ndim - 2
    k = weight.shape[2:]
    pads: list[int] = []
    for kk in reversed(k):
        total = dilation * (kk - 1)
        pads += [total // 2, total - total // 2]
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]

    class Circular(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return conv(F.pad(x, pads, mode="circular"), weight, dilation=dilation, groups=groups)

    return Circular()


@pytest.mark.parametrize(
    ("c_out", "c_in", "kernel", "size", "dilation", "groups"),
    [
        (3, 2, (3,), (7,), 1, 1),
        (4, 3, (3, 3), (5, 6), 1, 1),
        (2, 3, (2, 4), (4, 5), 1, 1),  # even kernels: asymmetric "same" padding
        (4, 4, (3, 3), (5, 5), 2, 2),  # dilation and groups
        (3, 2, (5, 5), (3, 4), 1, 1),  # kernel longer than the input: taps wrap around
        (2, 2, (3, 3, 3), (3, 4, 3), 1, 1),
        (6, 2, (1, 1), (3, 3), 1, 2),  # 1x1 kernel: the largest block's spectral norm
    ],
)
def test_circular_norm_is_the_dense_operator_norm(  # type: ignore[no-untyped-def]
    c_out, c_in, kernel, size, dilation, groups
) -> None:
    weight = torch.randn(c_out, c_in // groups, *kernel, dtype=torch.float64)
    value = circular_conv_norm(weight, size, dilation=dilation, groups=groups)
    expected = dense_norm(circular_layer(weight, dilation, groups), (c_in, *size))
    assert float(value) == pytest.approx(expected, rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    c_out=st.integers(1, 3),
    c_in=st.integers(1, 3),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    h=st.integers(2, 5),
    w=st.integers(2, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_circular_norm_property(c_out, c_in, kh, kw, h, w, seed) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(c_out, c_in, kh, kw, generator=gen, dtype=torch.float64)
    expected = dense_norm(circular_layer(weight, 1, 1), (c_in, h, w))
    assert float(circular_conv_norm(weight, (h, w))) == pytest.approx(expected, rel=1e-10)


def layers() -> list[tuple[nn.Module, tuple[int, ...]]]:
    """Convolution layers of many kinds with an input size each."""
    cases: list[tuple[nn.Module, tuple[int, ...]]] = []
    for mode in ("zeros", "circular", "reflect", "replicate"):
        for kwargs in (
            {"kernel_size": 3, "padding": 1},
            {"kernel_size": 3, "padding": 1, "stride": 2},
            {"kernel_size": 4, "padding": "same"},
            {"kernel_size": 3, "padding": 2, "dilation": 2, "groups": 2},
            {"kernel_size": 3, "padding": 0},
            {"kernel_size": (3, 1), "padding": (2, 0), "stride": (1, 2)},
        ):
            if kwargs.get("stride", 1) != 1 and kwargs["padding"] == "same":
                continue
            conv = nn.Conv2d(4, 4, padding_mode=mode, **kwargs).double()  # type: ignore[arg-type]
            cases.append((conv, (5, 6)))
    cases.append((nn.Conv1d(2, 3, 3, padding=1).double(), (9,)))
    cases.append((nn.Conv3d(2, 2, 3, padding=1, stride=2).double(), (4, 4, 3)))
    return cases


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize(("conv", "size"), layers(), ids=lambda v: repr(v).replace(" ", ""))
def test_layer_bound_bounds_the_dense_norm(conv: nn.Module, size: tuple[int, ...]) -> None:
    true = dense_norm(conv, (conv.in_channels, *size))
    geometry = ConvGeometry.of(conv, size)
    bound = float(conv_lipschitz_bound(conv, size).detach())
    assert true <= bound * (1 + 1e-10)
    if geometry.exact:
        assert bound == pytest.approx(true, rel=1e-10)


def test_exact_flag() -> None:
    exact = [
        nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(2, 2, 4, padding="same", padding_mode="circular"),
        nn.Conv2d(2, 2, 3, padding=2, dilation=2, padding_mode="circular"),
    ]
    inexact = [
        nn.Conv2d(2, 2, 3, padding=1),  # zero padding
        nn.Conv2d(2, 2, 3, padding=1, stride=2, padding_mode="circular"),
        nn.Conv2d(2, 2, 3, padding=0, padding_mode="circular"),
    ]
    assert all(ConvGeometry.of(c, (6, 6)).exact for c in exact)
    assert not any(ConvGeometry.of(c, (6, 6)).exact for c in inexact)


def test_zero_padding_needs_the_padded_size() -> None:
    # The documented pitfall: the circular norm at the *unpadded* size is no bound.
    conv = nn.Conv1d(1, 1, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[-1.0, 2.0, -1.0]]]))
    true = dense_norm(conv, (1, 3))
    assert true == pytest.approx(2 + math.sqrt(2), rel=1e-12)  # 2 - 2 cos(3 pi / 4)
    assert float(circular_conv_norm(conv.weight.detach(), (3,))) == pytest.approx(3.0, rel=1e-12)
    assert true <= float(conv_lipschitz_bound(conv, (3,)).detach())  # circular at n + 2P = 5


def test_padding_gain_is_the_padding_map_norm() -> None:
    for mode in ("reflect", "replicate", "circular"):
        conv = nn.Conv2d(1, 1, 5, padding=2, padding_mode=mode)
        geometry = ConvGeometry.of(conv, (4, 5))
        pad = nn.Module()
        pad.forward = lambda x, m=mode: F.pad(x, (2, 2, 2, 2), mode=m)  # type: ignore[method-assign]
        assert geometry.padding_gain() == pytest.approx(dense_norm(pad, (1, 4, 5)), rel=1e-10)


def test_gradcheck_and_half_precision() -> None:
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda w: circular_conv_norm(w, (4, 5), dilation=(1, 2)), (weight,))
    half = circular_conv_norm(weight.detach().half(), (4, 5))
    assert half.dtype == torch.float32
    assert float(half) == pytest.approx(
        float(circular_conv_norm(weight.detach(), (4, 5))), rel=2e-3
    )


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: circular_conv_norm([[1.0]], (4,)), TypeError, "weight must be a floating-point"),
        (lambda: circular_conv_norm(torch.zeros(2, 2), (4,)), ValueError, "1d, 2d or 3d"),
        (
            lambda: circular_conv_norm(torch.zeros(2, 2, 3), (4, 4)),
            ValueError,
            "input_size must be",
        ),
        (lambda: circular_conv_norm(torch.zeros(2, 2, 3), (0,)), ValueError, "input_size must be"),
        (
            lambda: circular_conv_norm(torch.zeros(2, 2, 3), (4,), dilation=0),
            ValueError,
            "dilation",
        ),
        (
            lambda: circular_conv_norm(torch.zeros(3, 2, 3), (4,), groups=2),
            ValueError,
            "groups=2 must divide",
        ),
        (
            lambda: circular_conv_norm(torch.zeros(2, 2, 3), (4,), groups=0),
            ValueError,
            "groups must be",
        ),
        (
            lambda: conv_lipschitz_bound(nn.ConvTranspose2d(2, 2, 3), (4, 4)),
            TypeError,
            "transposed",
        ),
        (lambda: conv_lipschitz_bound(nn.Conv2d(2, 2, 3), (4,)), ValueError, "input_size must be"),
    ],
)
def test_bad_arguments(call, error, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
