"""A certified upper bound on the l2 Lipschitz constant of a feed-forward critic.

For a composition ``D = f_L o ... o f_1``, ``Lip(D) <= prod_l Lip(f_l)`` (all in the Euclidean
norm of the flattened tensors). :func:`layer_bounds` bounds each layer of an ``nn.Sequential``
tree, :func:`lipschitz_upper_bound` multiplies them. Shapes are traced by running a dummy
input through the layers, so every convolution and pooling layer is bounded on its actual
input size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lipreg._validation import check_input_shape, input_shape_error
from lipreg.spectral import CONVS, ConvGeometry


@dataclass(frozen=True)
class LayerBound:
    """One layer's bound: its dotted path in the critic, its type and ``Lip(f_l) <= bound``."""

    name: str
    layer: str
    bound: float
    exact: bool  #: the bound is the layer's Lipschitz constant on the traced input size


_SUP_DERIVATIVE: dict[type[nn.Module], float] = {
    nn.ReLU: 1.0,
    nn.ReLU6: 1.0,
    nn.Tanh: 1.0,
    nn.Hardtanh: 1.0,
    nn.Softsign: 1.0,
    nn.Softplus: 1.0,  # sigmoid(beta x) < 1
    nn.CELU: 1.0,  # exp(x / alpha) <= 1 for x < 0
    nn.Sigmoid: 0.25,
    nn.Hardsigmoid: 1.0 / 6.0,
    # sup of the derivatives, rounded up: x sigmoid(x) peaks at 1.0998393 (x ~ 2.3994),
    # x Phi(x) at 1.1289041 (x = sqrt 2), its tanh approximation at 1.1289931 (x ~ 1.4185).
    nn.SiLU: 1.09984,
    nn.GELU: 1.129,
    nn.SELU: 1.0507009873554805 * 1.6732632423543772,  # scale * alpha, for x -> 0-
}
_SHAPE_ONLY = (nn.Identity, nn.Flatten, nn.Unflatten)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_AVG_POOLS = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_ADAPTIVE_MAX_POOLS = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def _per_axis(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _avg_pool_bound(pool: nn.Module, x: Tensor) -> tuple[float, bool]:
    """Schur test for the entrywise non-negative linear map ``A`` of an average pool:
    ``||A||_2^2 = ||A^T A||_2 <= max_j (A^T A 1)_j``, computed with one vjp on a ones input.
    When ``A^T A 1`` is constant, ``1`` is a positive eigenvector of the non-negative
    ``A^T A`` and by Perron-Frobenius its eigenvalue is the spectral radius: the bound is then
    exact (pools whose windows tile the input, global pooling)."""
    ones = torch.ones(x.shape[1:], dtype=torch.float64, device=x.device).unsqueeze(0)
    with torch.enable_grad():
        ones.requires_grad_(True)
        a1 = pool(ones)
        (ata1,) = torch.autograd.grad(a1, ones, a1.detach())
    bound = math.sqrt(float(ata1.max()))
    exact = bool(torch.allclose(ata1, ata1.flatten()[0].expand_as(ata1), rtol=1e-12, atol=0))
    return bound, exact


def _windows_per_entry(windows: list[list[int]], n: int) -> int:
    counts = [0] * n
    for members in windows:
        for j in members:
            counts[j] += 1
    return max(counts)


def _max_pool_bound(pool: nn.Module, x: Tensor, y: Tensor) -> float:
    """``|max a - max b| <= ||a - b||_inf`` per window, so ``||y - y'||^2 <= m ||x - x'||^2``
    with ``m`` the largest number of windows that share one input entry (a product of the
    per-axis counts, windows being products of per-axis intervals); the bound is ``sqrt(m)``,
    and exact: raising that entry above all others by ``t`` raises ``m`` outputs by ``t``."""
    spatial_in, spatial_out = x.shape[2:], y.shape[2:]
    dims = len(spatial_out)
    m = 1
    for axis in range(dims):
        n, o = spatial_in[axis], spatial_out[axis]
        if isinstance(pool, _ADAPTIVE_MAX_POOLS):
            windows = [list(range((i * n) // o, -(-((i + 1) * n) // o))) for i in range(o)]
        else:
            assert isinstance(pool, _MAX_POOLS)
            k, s, p, d = (
                _per_axis(getattr(pool, attr), dims)[axis]
                for attr in ("kernel_size", "stride", "padding", "dilation")
            )
            windows = [[j for t in range(k) if 0 <= (j := i * s - p + t * d) < n] for i in range(o)]
        m *= _windows_per_entry(windows, n)
    return math.sqrt(m)


def _batch_norm_bound(bn: _BatchNorm) -> float:
    assert bn.running_var is not None  # checked by _check_supported
    scale = (bn.running_var.double() + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double().abs()
    return float(scale.max())


_KNOWN = (
    nn.LeakyReLU,
    nn.ELU,
    nn.PReLU,
    *_SHAPE_ONLY,
    *_DROPOUT,
    nn.Linear,
    *CONVS,
    *_AVG_POOLS,
    *_MAX_POOLS,
    *_ADAPTIVE_MAX_POOLS,
    _BatchNorm,
)


def _check_supported(layer: nn.Module, name: str) -> None:
    """Raise, before the layer runs, if :func:`_leaf_bound` cannot bound it."""
    if getattr(layer, "return_indices", False):
        raise ValueError(
            f"cannot bound layer {name!r} ({type(layer).__name__} with return_indices=True): it "
            "returns (values, indices), not a tensor; build the pooling with "
            "return_indices=False for lipschitz_upper_bound"
        )
    if type(layer) in _SUP_DERIVATIVE or isinstance(layer, _KNOWN):
        if isinstance(layer, _BatchNorm) and (layer.training or layer.running_var is None):
            raise ValueError(
                f"cannot bound layer {name!r} ({type(layer).__name__}): in training mode (or "
                "without running statistics) batch norm divides by batch statistics, which is "
                "not Lipschitz in one sample; call critic.eval() first (it then uses running "
                "statistics)"
            )
        return
    raise ValueError(
        f"cannot bound layer {name!r} ({type(layer).__name__}): lipschitz_upper_bound knows "
        "nn.Sequential trees of Linear, Conv1d/2d/3d, average and max pooling, BatchNorm in "
        "eval mode, Flatten/Unflatten/Identity/Dropout and the activations ReLU, ReLU6, "
        "LeakyReLU, PReLU, ELU, CELU, SELU, Tanh, Hardtanh, Sigmoid, Hardsigmoid, Softsign, "
        "Softplus, SiLU, GELU. Modules with their own forward (residual blocks, attention) "
        "must be bounded by hand: for a residual block x + f(x), Lip <= 1 + Lip(f)"
    )


def _leaf_bound(layer: nn.Module, x: Tensor, y: Tensor) -> tuple[float, bool]:
    """``(bound, exact)`` for a supported layer mapping ``x`` to ``y`` (batch of one)."""
    kind = type(layer)
    if kind in _SUP_DERIVATIVE:
        return _SUP_DERIVATIVE[kind], kind is not nn.SiLU and kind is not nn.GELU
    if isinstance(layer, nn.LeakyReLU):
        return max(1.0, abs(layer.negative_slope)), True
    if isinstance(layer, nn.ELU):
        return max(1.0, abs(layer.alpha)), True
    if isinstance(layer, nn.PReLU):
        return max(1.0, float(layer.weight.detach().abs().max())), True
    if isinstance(layer, _SHAPE_ONLY):
        return 1.0, True
    if isinstance(layer, _DROPOUT):
        # In training mode every realisation scales the kept entries by 1 / (1 - p).
        if not layer.training:
            return 1.0, True
        return (1.0 / (1.0 - layer.p) if layer.p < 1 else 0.0), True
    if isinstance(layer, nn.Linear):
        weight = layer.weight.detach().double()
        return float(torch.linalg.matrix_norm(weight, ord=2)), True
    if isinstance(layer, CONVS):
        geometry = ConvGeometry.of(layer, tuple(x.shape[2:]))
        return float(geometry.bound(layer.weight.detach().double())), geometry.exact
    if isinstance(layer, _AVG_POOLS):
        return _avg_pool_bound(layer, x)
    if isinstance(layer, _MAX_POOLS + _ADAPTIVE_MAX_POOLS):
        return _max_pool_bound(layer, x, y), True
    assert isinstance(layer, _BatchNorm)  # the last kind _check_supported lets through
    return _batch_norm_bound(layer), True


def _walk(
    module: nn.Module, name: str, x: Tensor, out: list[LayerBound], shape: tuple[int, ...]
) -> Tensor:
    """Trace ``x`` through ``module``, appending every leaf's bound to ``out``; ``shape`` is
    the ``input_shape`` the trace started from (named when a layer cannot take its input)."""
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        for child_name, child in module.named_children():
            x = _walk(child, f"{name}.{child_name}" if name else child_name, x, out, shape)
        return x
    label = name or type(module).__name__
    _check_supported(module, label)
    try:
        y: Tensor = module(x)
    except RuntimeError as e:
        raise input_shape_error(
            shape, e, f"layer {label!r} ({type(module).__name__}, input {list(x.shape)})"
        ) from e
    bound, exact = _leaf_bound(module, x, y)
    out.append(LayerBound(label, type(module).__name__, bound, exact))
    return y


def layer_bounds(critic: nn.Module, input_shape: Sequence[int]) -> list[LayerBound]:
    """Per-layer l2 Lipschitz bounds of a feed-forward critic, in forward order.

    Linear layers: the exact spectral norm ``sigma_max(W)``. Convolutions: the circular
    FFT bound of :mod:`lipreg.spectral` on the traced input size (exact for stride-1 circular
    "same" layers; for zero padding the circular norm at the padded size). Average pools: the
    Schur bound ``sqrt(max_j (A^T A 1)_j)`` (exact for pools whose windows tile the input and
    for global pooling). Max pools: ``sqrt(m)``, exact, ``m`` the largest number of windows
    sharing an entry. BatchNorm in eval mode: ``max_c |w_c| / sqrt(var_c + eps)``. Activations: the
    supremum of their derivative. Dropout: 1 in eval mode, ``1 / (1 - p)`` in training mode.

    Args:
        critic: an ``nn.Sequential`` (nested ones are walked into) of the layers above.
        input_shape: the shape of one input sample without the batch axis, e.g. ``(3, 32, 32)``.

    Raises:
        ValueError: naming the first layer that cannot be bounded, or the first that cannot
            run on the traced input (a wrong ``input_shape``).
    """
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
    shape = check_input_shape(input_shape)
    reference = next(
        (t for t in (*critic.parameters(), *critic.buffers()) if t.is_floating_point()), None
    )
    dtype = torch.float32 if reference is None else reference.dtype
    device = None if reference is None else reference.device
    out: list[LayerBound] = []
    with torch.no_grad():
        _walk(critic, "", torch.zeros((1, *shape), dtype=dtype, device=device), out, shape)
    return out


def lipschitz_upper_bound(critic: nn.Module, input_shape: Sequence[int]) -> float:
    """``prod_l Lip(f_l)``: a certified upper bound on ``critic``'s l2 Lipschitz constant, i.e.
    ``|D(x) - D(y)| <= bound * ||x - y||_2`` for all inputs of shape ``input_shape``.

    The product of the bounds of :func:`layer_bounds` (see there for each layer type); it is
    usually loose for deep critics, since the layers' worst directions rarely align.
    """
    return math.prod(b.bound for b in layer_bounds(critic, input_shape))
