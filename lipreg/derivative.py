"""The critic's input gradient ``g = grad_x D(x)``, kept differentiable in its parameters.

``||dD(x)||_{B*}`` is the dual norm of ``h -> <g, h>``, so a Banach gradient penalty only
needs the ordinary Euclidean gradient ``g``; the norm does the rest. The gradient is
computed with ``torch.func`` (``vjp``, and ``vmap`` over cotangents for per-sample
derivatives) and stays attached to the critic's parameters, so ``penalty.backward()``
performs the double backward that gradient penalties need.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias, cast

import einops
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lipreg._validation import check_bool, check_int, check_scores, upcast

Engine: TypeAlias = Literal["func", "autograd"]
Critic: TypeAlias = Callable[..., Tensor]


def detached_error(what: str) -> ValueError:
    """The error of a critic output (``what``) that does not depend on the critic's input."""
    return ValueError(
        f"{what} does not depend on its input, so its derivative is identically zero: the "
        "critic detaches it somewhere (.detach(), .item(), NumPy, torch.no_grad() inside the "
        "critic); compute the score from the input with differentiable torch operations"
    )


_NO_STORAGE = "Cannot access data pointer of Tensor that doesn't have storage"


def check_options(
    engine: object,
    chunk_size: object,
    per_sample: object = False,
    grad_scaler: object = None,
) -> None:
    """Raise if an argument is not a valid option of :func:`input_gradient`."""
    if engine not in ("func", "autograd"):
        raise ValueError(f"engine must be 'func' or 'autograd', got {engine!r}")
    check_int(chunk_size, "chunk_size", 1, none_ok=True)
    check_bool(per_sample, "per_sample")
    if grad_scaler is not None and not isinstance(grad_scaler, torch.amp.GradScaler):
        raise TypeError(
            "grad_scaler must be a torch.amp.GradScaler (the one that scales the critic's loss) "
            f"or None, got {type(grad_scaler).__name__}"
        )


def _modules_of(critic: object) -> list[nn.Module]:
    """The modules behind a critic given as a module, a bound method or a functools.partial."""
    if isinstance(critic, nn.Module):
        return [critic]
    if isinstance(critic, functools.partial):
        return _modules_of(critic.func)
    owner = getattr(critic, "__self__", None)
    return [owner] if isinstance(owner, nn.Module) else []


@contextmanager
def running_stats_frozen(critic: object) -> Iterator[None]:
    """Batch-norm layers of ``critic`` in training mode normalise with the batch's statistics
    (as in training) but leave their running statistics alone.

    ``torch.func`` transforms reject the in-place running-statistics update, and the
    points at which a penalty is evaluated (interpolates) should not leak into the
    statistics used at evaluation time anyway. Flags are restored on exit.
    """
    layers = [
        m
        for root in _modules_of(critic)
        for m in root.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def critic_scores(out: object, batch: int, who: str = "the critic's output") -> Tensor:
    """The critic's output as ``[B]``; it must be floating-point, ``[B]`` or ``[B, 1]``
    (``who`` names it in messages). :func:`call_critic` checks more."""
    return check_scores(out, batch, who, "make the critic return one value per sample")


def describe(fn: object) -> str:
    """A short name of a user's callable for messages: a module's class, a function's name."""
    if isinstance(fn, functools.partial):
        return f"partial({describe(fn.func)})"
    if isinstance(fn, nn.Module):
        return type(fn).__name__
    return str(getattr(fn, "__qualname__", type(fn).__name__))


def _trainable(critic: object) -> bool:
    """Whether the modules behind ``critic`` have a parameter that requires grad."""
    return any(p.requires_grad for m in _modules_of(critic) for p in m.parameters())


def call_critic(
    critic: Critic, x: Tensor, critic_kwargs: Mapping[str, Any] | None = None
) -> Tensor:
    """``critic(x, **critic_kwargs)`` as scores ``[B]``, its output checked: the one place
    where lipreg calls a user's critic (penalties, :class:`lipreg.Lazy`,
    :func:`lipreg.estimate_lipschitz`, :class:`lipreg.CTransformLoss`, the integrations).

    Before the call, tensor keyword arguments with a batch axis must be on ``x``'s device.
    The output must be a floating-point tensor ``[B]`` or ``[B, 1]`` on ``x``'s device;
    when ``x`` requires grad (the input gradient is taken: inside ``torch.func`` transforms,
    ``requires_grad`` reports dependence on the transformed input) it must depend on ``x``,
    and otherwise, with grad enabled, it must not be detached from the critic's trainable
    parameters (when the critic is a module, a bound method or a ``functools.partial`` of
    one). Only metadata are read (type, dtype, shape, device, ``requires_grad``): no host
    synchronisation, no extra forward, and safe inside ``vmap`` / ``vjp``. Messages name the
    critic and what it returned.
    """
    kwargs = dict(critic_kwargs or {})
    for name, value in kwargs.items():
        if isinstance(value, Tensor) and value.ndim > 0 and value.device != x.device:
            raise ValueError(
                f"the critic's keyword argument {name} is on {value.device}, its input on "
                f"{x.device}: move it with {name}.to({str(x.device)!r})"
            )
    return critic_output(critic(x, **kwargs), x, critic=critic)


def critic_output(out: object, x: Tensor, who: str | None = None, critic: object = None) -> Tensor:
    """``out``, what a critic returned for ``x``, as scores ``[B]`` if it passes the checks of
    :func:`call_critic`; ``who`` names the critic in messages (default: ``critic``'s name),
    and the dependence on the parameters is checked when ``critic`` is given. For outputs a
    host computed itself (the integrations) as well. Messages are only composed for a
    rejected output."""

    def what() -> str:
        return f"the output of {who or f'the critic {describe(critic)}'}"

    batch = x.shape[0]
    if not (
        isinstance(out, Tensor)
        and out.is_floating_point()
        and out.shape in ((batch,), (batch, 1))
        and out.device == x.device
    ):
        critic_scores(out, batch, what())  # raises for the type, dtype and shape
        assert isinstance(out, Tensor)
        raise ValueError(
            f"{what()} is on {out.device}, its input on {x.device}: the critic must compute "
            "its scores from the input, on the input's device"
        )
    if x.requires_grad:
        if not out.requires_grad:
            raise detached_error(what())
    elif torch.is_grad_enabled() and not out.requires_grad and _trainable(critic):
        raise ValueError(
            f"{what()} is detached from its parameters (it does not require grad although they "
            "do), so a loss or penalty computed from it cannot train them: the critic detaches "
            "it somewhere (.detach(), .item(), NumPy, torch.no_grad() inside the critic)"
        )
    return out.squeeze(1) if out.ndim == 2 else out


def _cotangent_scale(
    grad_scaler: torch.amp.GradScaler | None, device: torch.device
) -> Tensor | None:
    """The scaler's current scale as a tensor (no host synchronisation), or None if inactive."""
    if grad_scaler is None or not grad_scaler.is_enabled():
        return None
    return grad_scaler.scale(torch.ones((), device=device))


def _cotangent(out: Tensor, scale: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Ones shaped like the scores, times the GradScaler's scale when there is one; and that
    factor as the scores' dtype holds it, in float32 (None without a scale), to divide by.

    The factor is the scale clamped to the dtype's normal range, whose ends are powers of two:
    a float16 ``65536`` (the default initial scale, 2^16) would be inf, so float16 scores get
    at most 2^15 and every input gradient of the scaler's first steps would otherwise be
    inf. The clamp keeps the factor finite without a host synchronisation.
    """
    ones = torch.ones_like(out)
    if scale is None:
        return ones, None
    info = torch.finfo(out.dtype)
    factor = scale.clamp(info.tiny, 2.0 ** math.floor(math.log2(info.max))).to(out.dtype)
    return factor * ones, factor.float()


def _translate(error: RuntimeError) -> RuntimeError:
    """A torch.func limitation, restated with what to do about it."""
    text = str(error)
    if "mutate a captured Tensor" in text:
        return RuntimeError(
            "torch.func cannot differentiate this critic: its forward updates a tensor in place "
            "(a buffer such as running statistics). Batch-norm layers are handled when the critic "
            "is passed as an nn.Module (or a bound method / functools.partial of one; give extra "
            "inputs as keyword arguments); for other layers use engine='autograd'"
        )
    if _NO_STORAGE in text:
        return RuntimeError(
            "torch.func cannot differentiate this critic: it reads the values of its input "
            "outside torch (.numpy(), .tolist(), .item(), float(), a NumPy or Python "
            "computation), which torch.func's tensors do not allow and which would detach its "
            f"output from the input anyway; compute the score with torch operations ({text})"
        )
    if "setup_context" in text:
        return RuntimeError(
            "torch.func cannot differentiate this critic: it uses a torch.autograd.Function "
            "without a setup_context staticmethod (an old-style custom op, e.g. StyleGAN's "
            "conv2d_gradfix on CUDA); use engine='autograd'. If that op's backward is "
            f"@once_differentiable, no engine can differentiate it twice: {_DERIVATIVE_FREE}"
        )
    return error


_DERIVATIVE_FREE = (
    "use a derivative-free penalty, which needs first derivatives only: ApproxR1, ApproxR2, "
    "ApproxR1R2 in place of BanachR1, BanachR2, BanachR1R2 (same norm and gamma, in a Hilbert "
    "norm), FiniteDifferenceGP in place of BanachGP"
)


def _raise_if_sharded(critic: object) -> None:
    """Raise if the critic is a module sharded by FSDP2's ``fully_shard``: it frees the
    unsharded parameters that the double backward needs, whose backward then fails with
    "data is not allocated yet" (measured on torch 2.13 with ``reshard_after_forward``
    either way). Only the critic's own module is checked, as FSDP2 shards the root."""
    if not torch.distributed.is_available():
        return
    from torch.distributed.fsdp import FSDPModule

    if any(isinstance(m, FSDPModule) for m in _modules_of(critic)):
        raise RuntimeError(
            "this critic is sharded with FSDP2's fully_shard, which frees the unsharded "
            "parameters that an exact gradient penalty's double backward needs (its backward "
            "would fail with 'data is not allocated yet'): " + _DERIVATIVE_FREE
        )


def _raise_if_not_twice_differentiable(g: Tensor) -> None:
    """Raise now, naming the cause and the way out, if the graph of the input gradient ``g``
    (built with ``create_graph``) holds a node that raises when differentiated: a
    ``NotImplemented`` node (a backward op without a derivative formula, as fused attention
    kernels), an ``Error`` node (the DelayedError that a backward marked
    ``@once_differentiable`` returns) or the backward of a ``torch.compile``-d graph
    (AOTAutograd's ``CompiledFunctionBackward``, whose own backward raises). Otherwise the
    user's ``backward()`` would fail later with torch's bare message. A walk over the graph's
    nodes (about 0.1 ms for the ResNet critic)."""
    seen: set[object] = set()
    stack = [g.grad_fn]
    found: set[str] = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        if name == "Error":
            found.add("a torch.autograd.Function whose backward is @once_differentiable")
        elif name == "CompiledFunctionBackwardBackward":
            found.add(
                "the backward of a torch.compile-d module, which AOTAutograd cannot "
                "differentiate (engine='func' runs such a critic uncompiled instead: dynamo "
                "skips frames inside torch.func transforms)"
            )
        elif name == "NotImplemented":
            # Its inputs include the node of the forward op whose backward it is (and those
            # of that op's inputs): attention kernels can be recognised by name.
            inputs = [type(n).__name__ for n, _ in node.next_functions if n is not None]
            attention = [op for op in inputs if "Attention" in op or "ScaledDotProduct" in op]
            found.add(
                f"the backward of {', '.join(attention)}, which has no derivative"
                if attention
                else "an op whose backward has no derivative (a NotImplemented node)"
            )
        stack.extend(n for n, _ in node.next_functions)
    if not found:
        return
    hint = (
        "; or let scaled_dot_product_attention use its twice-differentiable math kernel, "
        "with torch.nn.attention.sdpa_kernel(SDPBackend.MATH)"
        if any("ScaledDotProduct" in f for f in found)
        else ""
    )
    raise RuntimeError(
        "this critic cannot be differentiated twice, as an exact gradient penalty needs (its "
        "backward differentiates the input gradient in the critic's parameters): the "
        f"gradient's graph holds {'; '.join(sorted(found))}. Fused kernels such as "
        f"FlashAttention and compiled graphs do this: {_DERIVATIVE_FREE}{hint}"
    )


def _func_gradient(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: Tensor | None,
    per_sample: bool,
    chunk_size: int | None,
) -> tuple[Tensor, Tensor | None]:
    try:
        out, vjp_fn = cast(tuple[Tensor, Callable[[Tensor], tuple[Tensor]]], torch.func.vjp(f, x))
        cotangent, factor = _cotangent(out, scale)
        if not per_sample:
            (g,) = vjp_fn(cotangent)
            return g, factor
        # Row i of the batch Jacobian is the vjp with the i-th one-hot cotangent; its i-th
        # sample is the derivative of D(x)_i in x_i with the rest of the batch held fixed.
        (rows,) = torch.func.vmap(vjp_fn, chunk_size=chunk_size)(torch.diag_embed(cotangent))
        return einops.rearrange(torch.diagonal(rows, dim1=0, dim2=1), "... b -> b ..."), factor
    except RuntimeError as e:
        translated = _translate(e)
        if translated is e:
            raise
        raise translated from e


def _autograd_gradient(
    f: Callable[[Tensor], Tensor], x: Tensor, scale: Tensor | None, per_sample: bool, who: str
) -> tuple[Tensor, Tensor | None]:
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        leaf = x.requires_grad_(True)
        out = f(leaf)
        cotangent, factor = _cotangent(out, scale)
        if not per_sample:
            (g,) = torch.autograd.grad(
                out, leaf, cotangent, create_graph=create_graph, allow_unused=True
            )
            if g is None:
                raise detached_error(f"the output of {who}")
            return g, factor
        rows = []
        for i in range(out.shape[0]):
            (row,) = torch.autograd.grad(
                out[i],
                leaf,
                cotangent[i],
                retain_graph=True,
                create_graph=create_graph,
                allow_unused=True,
            )
            if row is None:
                raise detached_error(f"the output of {who}")
            rows.append(row[i])
        return torch.stack(rows), factor


def input_gradient(
    critic: Critic,
    x: Tensor,
    *,
    critic_kwargs: Mapping[str, Any] | None = None,
    per_sample: bool = False,
    engine: Engine = "func",
    grad_scaler: torch.amp.GradScaler | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """The Euclidean input gradient of a critic, differentiable in the critic's parameters.

    Default (batched): ``g = d/dx sum_i D(x)_i``, one vjp of the summed output, shape
    ``[B, ...]`` like ``x``. Its ``i``-th sample equals ``dD(x)_i / dx_i`` when samples do not
    interact inside the critic, which holds for any critic without batch-coupling layers.

    ``per_sample=True``: ``g_i = dD(x)_i / dx_i`` with the rest of the batch held fixed, the
    diagonal blocks of the batch Jacobian, computed as a vmap of the vjp over the ``B``
    one-hot cotangents. This is the derivative that Lemma 1 refers to for critics that
    couple samples (batch-norm statistics in training mode, StyleGAN's minibatch-stddev
    layer). It costs about ``B`` backward passes (compute and memory, including in the
    double backward); ``chunk_size`` cotangents at a time bound the peak of the first pass.

    Batch-norm layers of a critic in training mode use batch statistics but do not update
    their running statistics during this evaluation (see :func:`running_stats_frozen`).

    Args:
        critic: callable ``critic(x, **critic_kwargs)`` returning scores ``[B]`` or ``[B, 1]``.
        x: points ``[B, ...]``; treated as a constant (detached from any graph).
        critic_kwargs: extra keyword arguments of the critic (e.g. class labels).
        per_sample: diagonal-block derivatives instead of the batched vjp.
        engine: ``"func"`` (``torch.func``) or ``"autograd"`` (``torch.autograd.grad``) for
            critics that ``torch.func`` cannot transform (old-style ``autograd.Function``
            custom ops, layers mutating buffers in forward). Same values.
        grad_scaler: a ``torch.amp.GradScaler``; when enabled the gradient is taken of the
            scaled output (so float16 backward passes do not underflow) and divided by the
            scale in float32, PyTorch's documented recipe for gradient penalties. The scale is
            capped at the largest power of two the output's dtype holds (2^15 for float16:
            the default initial scale 2^16 is inf there).
        chunk_size: with ``per_sample``, how many one-hot cotangents one vmap chunk holds.

    Returns:
        ``g`` with the shape of ``x``, in ``x``'s dtype (float32 at least when unscaled).

    Raises:
        RuntimeError: when gradients are enabled and the critic cannot be differentiated
            twice (an op whose backward has no derivative, such as a fused attention kernel,
            a ``torch.autograd.Function`` whose backward is ``@once_differentiable``, or a
            ``torch.compile``-d module under ``engine="autograd"``, a module sharded by
            FSDP2's ``fully_shard``): the backward of a penalty built on ``g`` would fail.
            The message names the cause and the derivative-free penalties
            (:class:`lipreg.ApproxR1`).
    """
    check_options(engine, chunk_size, per_sample, grad_scaler)

    def f(z: Tensor) -> Tensor:
        return call_critic(critic, z, critic_kwargs)

    if torch.is_grad_enabled():
        _raise_if_sharded(critic)
    scale = _cotangent_scale(grad_scaler, x.device)
    with running_stats_frozen(critic):
        if engine == "func":
            g, factor = _func_gradient(f, x.detach(), scale, per_sample, chunk_size)
        else:
            who = f"the critic {describe(critic)}"
            g, factor = _autograd_gradient(f, x.detach(), scale, per_sample, who)
    if g.grad_fn is not None:
        _raise_if_not_twice_differentiable(g)
    return g if factor is None else upcast(g) / factor
