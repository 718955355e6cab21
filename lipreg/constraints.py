"""Hard Lipschitz constraints on a critic's weights: WGAN weight clipping and spectral
normalisation (power iteration, or the exact FFT operator norm for convolutions)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm
from torch.utils.hooks import RemovableHandle

from lipreg._modes import eval_mode
from lipreg._validation import (
    check_bool,
    check_input_shape,
    check_int,
    check_real,
    input_shape_error,
)
from lipreg.spectral import CONVS, ConvGeometry


class WeightClip:
    """WGAN weight clipping (Arjovsky, Chintala, Bottou, 2017): every parameter of ``module`` is
    clamped to ``[-c, c]`` after each optimiser step.

    Clipping bounds every weight, hence (for a fixed architecture) the critic's Lipschitz
    constant, crudely: the paper calls it "a clearly terrible way to enforce a Lipschitz
    constraint" and WGAN-GP replaced it, but it is the baseline every later method is
    compared with. By default all parameters are clamped, biases and normalisation affines
    included, exactly as the reference code (``for p in netD.parameters():
    p.data.clamp_(-c, c)``) so results are comparable; biases do not change the Lipschitz
    constant, and ``biases=False`` leaves parameters whose name ends in ``bias`` alone.

    Use it as an explicit call after ``optimizer.step()``, ``clip()``, or once with
    ``clip.attach(optimizer)``, which clamps after every ``optimizer.step()`` through
    ``Optimizer.register_step_post_hook`` and returns a handle whose ``remove()`` detaches
    it. The clip range is recorded in :meth:`state_dict` (with ``biases``) for checkpoints;
    ``WeightClip`` is a plain object, like an LR scheduler, so that its state never holds
    a copy of the critic's parameters.

    Args:
        module: the critic.
        c: the clip range, ``c > 0`` (the paper uses 0.01).
        biases: also clamp parameters named ``*bias``.
    """

    def __init__(self, module: nn.Module, c: float = 0.01, *, biases: bool = True) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"module must be an nn.Module (the critic), got {type(module).__name__}"
            )
        check_bool(biases, "biases")
        self.c = check_real(c, "c", 0.0, math.inf, open_low=True, open_high=True)
        self.biases = biases
        self.module = module
        if not self.parameters():
            raise ValueError(
                f"{type(module).__name__} has no parameters to clip"
                + ("" if biases else " other than biases (pass biases=True to clip those)")
            )

    def parameters(self) -> list[nn.Parameter]:
        """The parameters that are clamped (read anew on every call)."""
        return [
            p
            for name, p in self.module.named_parameters()
            if self.biases or name.rsplit(".", 1)[-1] != "bias"
        ]

    @torch.no_grad()
    def clip(self) -> None:
        """Clamp the parameters in place to ``[-c, c]``."""
        for p in self.parameters():
            p.clamp_(-self.c, self.c)

    __call__ = clip

    def attach(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Clamp after every ``optimizer.step()``; ``handle.remove()`` undoes it."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in stepped for p in self.parameters()):
            raise ValueError(
                "the optimizer updates none of the clipped module's parameters; attach the "
                "clip to the critic's optimizer"
            )

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.clip()

        return optimizer.register_step_post_hook(hook)

    def state_dict(self) -> dict[str, float | bool]:
        """``{"c": c, "biases": biases}``."""
        return {"c": self.c, "biases": self.biases}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``c`` and ``biases``; a state with missing, unknown or invalid entries is
        rejected before anything changes."""
        if not isinstance(state, Mapping) or set(state) != {"c", "biases"}:
            raise ValueError(
                "a WeightClip state is a mapping with exactly the keys 'c' and 'biases', got "
                f"{state!r}; nothing was loaded"
            )
        c = check_real(state["c"], "c", 0.0, math.inf, open_low=True, open_high=True)
        check_bool(state["biases"], "biases")
        self.c, self.biases = c, state["biases"]

    def __repr__(self) -> str:
        return f"WeightClip({type(self.module).__name__}, c={self.c:g}, biases={self.biases})"


class FFTSpectralNorm(nn.Module):
    """Parametrization ``W -> W / ||conv_W||_2`` of a convolution's weight, with the operator
    norm (or its bound, for non-circular layers) from the FFT of the kernel on the layer's
    input size (:class:`lipreg.spectral.ConvGeometry`) instead of power iteration.

    The normalised layer has operator norm 1 for a stride-1 circular "same" convolution and at
    most 1 otherwise. Each forward costs a real FFT of the kernel and one ``C_out x C_in``
    SVD per frequency; use ``torch.nn.utils.parametrize.cached()`` to reuse the normalised
    weight over several forwards of one step.
    """

    def __init__(self, geometry: ConvGeometry) -> None:
        super().__init__()
        self.geometry = geometry

    def forward(self, weight: Tensor) -> Tensor:
        return weight / self.geometry.bound(weight).to(weight.dtype)

    def extra_repr(self) -> str:
        return f"input_size={self.geometry.input_size}, exact={self.geometry.exact}"


def _traced_input_sizes(
    critic: nn.Module, convs: Mapping[str, nn.Module], input_shape: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """The spatial input size of every layer in ``convs``, from one forward of a zero input."""
    shape = check_input_shape(input_shape)
    sizes: dict[str, set[tuple[int, ...]]] = {name: set() for name in convs}
    handles = [
        conv.register_forward_pre_hook(
            lambda m, args, name=name: sizes[name].add(tuple(args[0].shape[2:]))
        )
        for name, conv in convs.items()
    ]
    weight = next(iter(convs.values())).weight
    assert isinstance(weight, Tensor)
    try:
        with torch.no_grad(), eval_mode(critic):
            critic(torch.zeros((1, *shape), dtype=weight.dtype, device=weight.device))
    except RuntimeError as e:
        raise input_shape_error(shape, e, "spectral_normalize(conv='fft'): the critic") from e
    finally:
        for handle in handles:
            handle.remove()
    for name, seen in sizes.items():
        if len(seen) != 1:
            raise ValueError(
                f"conv='fft' needs one input size per convolution, but layer {name!r} ran on "
                f"{sorted(seen) or 'no input'} in a forward of input_shape {list(shape)}; use "
                "conv='power' for layers that are skipped or shared across sizes"
            )
    return {name: next(iter(seen)) for name, seen in sizes.items()}


def spectral_normalize(
    critic: nn.Module,
    *,
    conv: Literal["power", "fft"] = "power",
    input_shape: Sequence[int] | None = None,
    n_power_iterations: int = 1,
    eps: float = 1e-12,
) -> nn.Module:
    """Spectral normalisation (Miyato, Kataoka, Koyama, Yoshida, 2018) of every ``nn.Linear``
    and ``nn.Conv1d/2d/3d`` of ``critic``, in place; returns ``critic``.

    Each weight ``W`` becomes ``W / sigma(W)`` through ``torch.nn.utils.parametrize``.
    ``conv="power"`` (the paper's method, and the only one for Linear layers): ``sigma`` is
    ``torch.nn.utils.parametrizations.spectral_norm``'s power-iteration estimate of the
    largest singular value of the kernel reshaped to ``[C_out, C_in k_1 ... k_d]``. For a
    convolution that is not its operator norm: the operator norm can exceed it by up to a
    factor ``sqrt(k_1 ... k_d)``. ``conv="fft"``: ``sigma`` is the exact operator norm of the
    convolution on its input size from the FFT of its kernel (Sedghi, Gupta, Long, 2019; a
    certified bound for zero-padded or strided layers, see :mod:`lipreg.spectral`), via
    :class:`FFTSpectralNorm`; then every normalised layer is 1-Lipschitz (at most) in l2.
    Other layers (``nn.ConvTranspose*``, ``nn.Embedding`` of projection critics, ...) are left
    as they are: check a whole critic with :func:`lipreg.lipschitz_upper_bound`. The input
    size of every convolution is traced with one forward of a zero batch of ``input_shape``
    (in eval mode, without gradients; modes are restored).

    All layers are checked before any is changed: a layer already parametrized or spectrally
    normalised raises ``ValueError``.

    Args:
        critic: the critic module.
        conv: ``"power"`` or ``"fft"`` for the convolutions.
        input_shape: shape of one critic input without the batch axis, needed by ``"fft"``.
        n_power_iterations: power-iteration steps per forward (``"power"`` layers).
        eps: numerical floor of the power iteration.
    """
    if not isinstance(critic, nn.Module):
        raise TypeError(f"critic must be an nn.Module, got {type(critic).__name__}")
    if conv not in ("power", "fft"):
        raise ValueError(f"conv must be 'power' or 'fft', got conv={conv!r}")
    check_int(n_power_iterations, "n_power_iterations", 1)
    check_real(eps, "eps", 0.0, math.inf, open_low=True, open_high=True)
    layers: dict[str, nn.Module] = {
        name: m for name, m in critic.named_modules() if isinstance(m, (nn.Linear, *CONVS))
    }
    if not layers:
        raise ValueError(f"{type(critic).__name__} has no nn.Linear or nn.Conv layer to normalise")
    for name, m in layers.items():
        if parametrize.is_parametrized(m, "weight") or hasattr(m, "weight_orig"):
            raise ValueError(
                f"layer {name!r} is already parametrized or spectrally normalised; nothing was "
                "changed (normalise each critic once)"
            )
    convs = {name: m for name, m in layers.items() if isinstance(m, CONVS)}
    fft_sizes: dict[str, tuple[int, ...]] = {}
    if conv == "fft" and convs:
        if input_shape is None:
            raise ValueError(
                "conv='fft' needs input_shape, the shape of one critic input without the batch "
                "axis (e.g. (3, 32, 32)), to know every convolution's input size"
            )
        fft_sizes = _traced_input_sizes(critic, convs, input_shape)
    for name, m in layers.items():
        if name in fft_sizes:
            parametrize.register_parametrization(
                m, "weight", FFTSpectralNorm(ConvGeometry.of(m, fft_sizes[name]))
            )
        else:
            spectral_norm(m, n_power_iterations=n_power_iterations, eps=eps)
    return critic
