"""Argument checks shared by norms, samplers and penalties.

Every check raises before any state changes, with a message that names the argument and
says how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def check_batch(x: object, name: str) -> Tensor:
    """Return ``x`` if it is a floating batch-first tensor ``[B, ...]`` with ``B >= 1``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, ...], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert it with "
            f"{name}.float() (images are usually scaled to [-1, 1])"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"{name} must be batch-first with at least one sample, shape [B, ...] with B >= 1; "
            f"got shape {list(x.shape)} (add a batch dimension with {name}.unsqueeze(0))"
        )
    return x


def described(value: object) -> str:
    """What a callable returned, for messages: ``"a float64 tensor of shape [4, 3] on cpu"``,
    or the type of anything else."""
    if isinstance(value, Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"a {dtype} tensor of shape {list(value.shape)} on {value.device}"
    return f"a {type(value).__name__}"


def check_points(points: object, like: Tensor, who: str) -> Tensor:
    """``points`` if they are a batch ``[B', ...]`` of samples shaped like ``like``'s, in its
    dtype and on its device (``who`` names them: the points are evaluated by the critic,
    whose weights are in ``like``'s dtype)."""
    check_batch(points, who)
    assert isinstance(points, Tensor)
    if (points.shape[1:], points.dtype, points.device) != (like.shape[1:], like.dtype, like.device):
        sample = ", ".join(map(str, like.shape[1:]))
        raise ValueError(
            f"{who} must be points [B', {sample}] like real's samples, "
            f"{str(like.dtype).removeprefix('torch.')} on {like.device}; got "
            f"{described(points)}"
        )
    return points


def check_scores(scores: object, batch: int, name: str, fix: str) -> Tensor:
    """``scores`` as ``[B]``: critic scores must be floating-point, ``[B]`` or ``[B, 1]`` with
    ``B = batch``; ``fix`` ends the message of a rejected value."""
    if not isinstance(scores, Tensor):
        several = (
            " (a callable that returns several values, as (scores, features), can be passed "
            "as lambda x: critic(x)[0])"
            if isinstance(scores, (tuple, list))
            else ""
        )
        raise TypeError(
            f"{name} must be a tensor of scores, shape [B] or [B, 1], got "
            f"{type(scores).__name__}{several}; {fix}"
        )
    if not scores.is_floating_point():
        why = (
            "complex values are not scores"
            if scores.is_complex()
            else "integer and boolean values have no derivative"
        )
        raise TypeError(
            f"{name} must be real floating-point scores, got dtype {scores.dtype}: {why}; {fix}"
        )
    if scores.shape == (batch, 1):
        return scores.squeeze(1)
    if scores.shape != (batch,):
        raise ValueError(
            f"{name} must hold one score per sample, shape [B] or [B, 1] with B={batch}, got "
            f"shape {list(scores.shape)}; {fix}"
        )
    return scores


def check_input_shape(input_shape: object) -> tuple[int, ...]:
    """``input_shape`` as a tuple if it is the shape of one critic input without the batch
    axis: a non-empty sequence of positive integers."""
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else ()
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(
            "input_shape must be the shape of one critic input without the batch axis, a "
            f"non-empty sequence of positive integers such as (3, 32, 32); got {input_shape!r}"
        )
    return shape


def input_shape_error(shape: tuple[int, ...], error: Exception, where: str) -> ValueError:
    """The error of a critic (or one of its layers, named in ``where``) that cannot run on a
    batch of ``input_shape`` ``shape``: torch's message, restated about ``input_shape``."""
    return ValueError(
        f"{where} failed in a forward of input_shape {tuple(shape)}: {error}. input_shape must "
        "be the shape of one critic input without the batch axis, e.g. (3, 32, 32) for a "
        "critic of [B, 3, 32, 32] images"
    )


def first_tensor(batch: object, who: str) -> Tensor:
    """The samples of a data-loader batch: ``batch`` itself or the first element of a
    tuple/list, which must be a tensor; ``who`` names the consumer in the error."""
    item = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(item, Tensor):
        raise TypeError(
            f"{who} expects batches that are tensors [B, ...] or tuples/lists whose first "
            "element is one (as a DataLoader over (image, label) yields), "
            f"got {type(batch).__name__}"
        )
    return item


def check_critic(critic: object, call: str = "penalty(critic, real, fake)") -> None:
    """Raise unless ``critic`` is callable; ``call`` shows the right way to call."""
    if not callable(critic):
        raise TypeError(
            f"critic must be callable (an nn.Module or function), got {type(critic).__name__}; "
            f"call {call}"
        )


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False``: a string such as ``"False"`` (truthy)
    or a number would otherwise switch an option silently."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {name}={value!r}")
    return value


def check_int(value: object, name: str, low: int, *, none_ok: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= low`` (or None when
    ``none_ok``); booleans, floats such as ``2.0`` and strings are rejected."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = {0: "a non-negative integer", 1: "a positive integer"}[low]
        alternative = " or None" if none_ok else ""
        raise ValueError(f"{name} must be {kind}{alternative}, got {name}={value!r}")


def upcast(x: Tensor) -> Tensor:
    """float16/bfloat16 -> float32: norms of gradients under-/overflow in half precision."""
    return x.float() if x.dtype in _LOW_PRECISION else x


def check_real(
    value: object,
    name: str,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """Return ``value`` as a float if it lies in the interval from ``low`` to ``high`` (each end
    closed unless ``open_*``); NaN, booleans and non-numbers are rejected."""
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number in {interval}, got {value!r}")
    v = float(value)
    if math.isnan(v) or v < low or v > high or (v == low and open_low) or (v == high and open_high):
        raise ValueError(f"{name} must be in {interval}, got {name}={value!r}")
    return v


def check_pair(x: Tensor, y: Tensor, x_name: str, y_name: str) -> None:
    """Raise unless ``x`` and ``y`` are batches with equal per-sample shape, dtype and device."""
    check_batch(x, x_name)
    check_batch(y, y_name)
    for what, a, b in (
        ("shape", x.shape[1:], y.shape[1:]),
        ("dtype", x.dtype, y.dtype),
        ("device", x.device, y.device),
    ):
        if a != b:
            raise ValueError(
                f"{x_name} and {y_name} must have the same per-sample shape, dtype and device; "
                f"{what} differs: {x_name} {a} vs {y_name} {b} "
                f"(move or cast {y_name} to match {x_name})"
            )
