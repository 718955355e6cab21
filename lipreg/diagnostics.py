"""A certified lower bound on a critic's Lipschitz constant in any lipreg norm.

Run it on a trained critic to see whether a penalty holds ``||dD||_{B*}`` near ``gamma``:
every number it reports is attained by the critic at a point (or a pair of points) that it
returns, so the critic's Lipschitz constant in ``B`` is at least that large.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from lipreg._modes import eval_mode as _eval_mode
from lipreg._validation import (
    check_batch,
    check_bool,
    check_critic,
    check_int,
    check_real,
    upcast,
)
from lipreg.derivative import (
    Critic,
    Engine,
    call_critic,
    check_options,
    describe,
    input_gradient,
    running_stats_frozen,
)
from lipreg.norms import Norm, parse_norm
from lipreg.pairwise import pairwise_distances


@dataclass(frozen=True)
class LipschitzEstimate:
    """Result of :func:`estimate_lipschitz`; ``Lip_B(D) >= value`` (see there)."""

    value: float  #: the lower bound, ``max(gradient, pairwise)``
    method: Literal["gradient", "pairwise"]  #: which of the two attains ``value``
    #: ``(x,)`` with ``||dD(x)||_{B*} = value``, or ``(x, y)`` with the quotient ``= value``;
    #: samples without the batch axis
    witness: tuple[Tensor, ...]
    gradient: float  #: the largest ``||dD(x)||_{B*}`` met during the ascent
    pairwise: float | None  #: the largest quotient (None for local norms: no distance)
    steps: int  #: ascent steps taken (fewer than asked when dD does not depend on x)


def _best_pair(
    critic: Critic, points: Tensor, norm: Norm, kwargs: Mapping[str, Any]
) -> tuple[float, int, int]:
    """``(quotient, i, j)`` maximising ``|D(x_i) - D(x_j)| / ||x_i - x_j||_B``, ``i != j``
    (NaN or inf if a score is)."""
    scores = call_critic(critic, points, kwargs).to(points.dtype)
    dist = pairwise_distances(points, points, norm)
    quotient = (scores.unsqueeze(1) - scores.unsqueeze(0)).abs() / dist
    quotient = torch.where(dist > 0, quotient, torch.zeros_like(quotient))
    flat = int(quotient.argmax())
    i, j = divmod(flat, points.shape[0])
    return float(quotient[i, j]), i, j


def _not_finite(what: str) -> ValueError:
    return ValueError(
        f"estimate_lipschitz: {what} is NaN or inf, so no finite lower bound can be certified: "
        "the critic overflows or returns NaN/inf near the samples (check its weights; float64 "
        "samples and critic have more range, a smaller lr stays closer to the samples)"
    )


def estimate_lipschitz(
    critic: Critic,
    norm: Norm | str,
    samples: Tensor,
    *,
    steps: int = 100,
    lr: float | None = None,
    pairwise: bool = True,
    eval_mode: bool = True,
    engine: Engine = "func",
    critic_kwargs: Mapping[str, Any] | None = None,
) -> LipschitzEstimate:
    """A certified lower bound on ``Lip_B(D) = sup_{x != y} |D(x) - D(y)| / ||x - y||_B``.

    The larger of two lower bounds:

    - ``gradient``: ``max ||dD(x)||_{B*}`` over the points of a gradient ascent on
      ``x -> ||dD(x)||_{B*}`` started at ``samples`` (Adam on the displacement of every sample,
      ``steps`` steps, step size decaying linearly from ``lr`` to ``lr / 10``). By Lemma 1 of
      Adler & Lunz (2018) the local constant ``||dD(x)||_{B*}`` at any point where ``D`` is
      differentiable is at most ``Lip_B(D)`` (ReLU critics are differentiable almost
      everywhere, and at the points an ascent visits). Local norms measure it at base point x.
    - ``pairwise``: ``max |D(x) - D(y)| / ||x - y||_B`` over all pairs of the samples and of the
      ascent's final points, which needs no differentiability (skipped for local norms).

    Both are exact evaluations of the critic (up to floating-point rounding; use float64
    samples and critic for a certificate to the last digits). The ascent finds the steepest
    point near each sample, so the result can only under-estimate the constant: if the
    penalty works, ``value`` should be close to ``gamma``; a ``value`` well above ``gamma``
    proves the constraint is violated. The critic's parameters, their
    ``.grad`` and its batch-norm statistics are not changed; with ``eval_mode`` every module
    is in eval mode during the estimate and gets its own mode back afterwards. Samples with
    NaN or inf, and a NaN or inf dual gradient norm or quotient met on the way (a critic that
    overflows), raise ``ValueError``: a bound that skipped them would certify nothing.

    Args:
        critic: ``critic(x, **critic_kwargs)`` giving scores ``[B]`` or ``[B, 1]``.
        norm: the norm of ``B`` (a :class:`lipreg.Norm` or a text spec).
        samples: starting points ``[B, ...]`` (a real batch, fakes, interpolates); not modified.
        steps: ascent steps, ``>= 0`` (0: the samples' own dual gradient norms only).
        lr: initial Adam step size in input units; default ``0.05 *`` the root mean square
            of the samples' entries (0.05 if they are all zero).
        pairwise: also compute the pairwise quotients (``B^2`` distances of ``2B`` points).
        eval_mode: evaluate the critic in eval mode (dropout off, batch norm on running
            statistics), the function a trained critic computes. With ``False``, layers that
            couple the samples of a batch (batch statistics) make the batched input gradient
            differ from each sample's own derivative.
        engine: ``"func"`` or ``"autograd"`` (see :func:`lipreg.input_gradient`).
        critic_kwargs: extra keyword arguments of the critic.
    """
    check_critic(critic, "estimate_lipschitz(critic, norm, samples)")
    norm = parse_norm(norm)
    check_batch(samples, "samples")
    norm.check(samples, "samples")
    check_int(steps, "steps", 0)
    check_bool(pairwise, "pairwise")
    check_bool(eval_mode, "eval_mode")
    if lr is not None:
        check_real(lr, "lr", 0.0, math.inf, open_low=True, open_high=True)
    check_options(engine, None)
    if not bool(samples.isfinite().all()):
        raise ValueError(
            "samples contain NaN or inf: a lower bound needs finite starting points (check the "
            "batch you pass)"
        )
    kwargs = dict(critic_kwargs or {})
    x0 = upcast(samples.detach()).clone()
    if lr is None:
        rms = float(x0.square().mean().sqrt())
        lr = 0.05 * rms if rms > 0 else 0.05

    delta = torch.zeros_like(x0, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=lr, maximize=True)
    best, best_point, taken = -math.inf, x0[0], 0

    def shifted(z: Tensor, **keywords: Any) -> Tensor:
        out: Tensor = critic(z + delta, **keywords)
        return out

    shifted.__qualname__ = describe(critic)  # messages about its output name the user's critic

    with _eval_mode(critic, eval_mode), running_stats_frozen(critic), torch.enable_grad():
        for step in range(steps + 1):
            # The gradient at x0 + delta, differentiable in delta through the closure.
            g = input_gradient(shifted, x0, critic_kwargs=kwargs, engine=engine)
            at = (x0 + delta) if norm.local else None
            dual = norm.dual(g, at)
            top_value, top_index = dual.detach().max(0)
            top, i = float(top_value), int(top_index)  # NaN or inf if any dual norm is
            if not math.isfinite(top):
                raise _not_finite(f"the dual gradient norm ||dD(x)||_B* at ascent step {step}")
            if top > best:
                best, best_point = top, (x0[i] + delta[i]).detach().clone()
            if step == steps or not dual.requires_grad:
                break
            # None when unused (torch's stubs say Tensor).
            ascent: Tensor | None = torch.autograd.grad(dual.sum(), delta, allow_unused=True)[0]
            if ascent is None:
                break  # dD does not depend on x (an affine critic): nothing to climb
            taken = step + 1
            delta.grad = ascent
            for group in optimizer.param_groups:
                group["lr"] = lr * (1 - 0.9 * step / max(steps - 1, 1))
            optimizer.step()
        gradient_value = best
        pair_value: float | None = None
        witness: tuple[Tensor, ...] = (best_point,)
        if pairwise and not norm.local:
            with torch.no_grad():
                points = torch.cat([x0, x0 + delta.detach()]) if taken else x0
                pair_value, i, j = _best_pair(critic, points, norm, kwargs)
            if not math.isfinite(pair_value):
                raise _not_finite("a difference quotient |D(x) - D(y)| / ||x - y||_B")
            if pair_value > best:
                best = pair_value
                witness = (points[i].clone(), points[j].clone())
    method: Literal["gradient", "pairwise"] = "gradient" if len(witness) == 1 else "pairwise"
    return LipschitzEstimate(best, method, witness, gradient_value, pair_value, taken)
