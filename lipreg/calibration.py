"""lam and gamma: fixed values or the paper's estimates from real data.

Adler & Lunz (2018) choose ``lam ~ E||X||_B`` and ``gamma ~ E||X||_{B*}`` over real data
``X``. :class:`Calibration` keeps both either fixed or as running means over every real
sample seen in training mode (in buffers, so they checkpoint with ``state_dict``), averaged
across processes when ``torch.distributed`` is initialised.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import torch
import torch.distributed as dist
from torch import Tensor

from lipreg._state import CheckedState
from lipreg._validation import check_batch, check_bool, check_int, check_real, first_tensor
from lipreg.norms import Norm

Auto: TypeAlias = Literal["auto"]
Setting: TypeAlias = float | Auto


def _setting(value: object, name: str, *, open_low: bool) -> Setting:
    if isinstance(value, str) and value == "auto":
        return "auto"
    try:
        return check_real(value, name, 0.0, math.inf, open_low=open_low, open_high=True)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{e}; or pass {name}='auto' to estimate it from real data") from None


def _all_reduce_sum(t: Tensor) -> Tensor:
    """Sum over processes when torch.distributed is initialised (every rank must call it)."""
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


@dataclass(frozen=True)
class Estimate:
    """lam and gamma for one call, and the running-mean state that would produce them."""

    lam: Tensor | float
    gamma: Tensor | float
    means: Tensor  # [2]: running means of ||X||_B and ||X||_{B*}
    count: Tensor  # samples behind ``means``
    learned: bool = False  # whether ``means`` includes the call's batch and is to be stored


class Calibration(CheckedState):
    """``lam`` and ``gamma``, each fixed or ``"auto"``.

    ``"auto"`` means ``lam = E||X||_B`` and ``gamma = E||X||_{B*}`` over real samples ``X``
    (the paper's rule; the public reference code instead estimates gamma with the primal
    Sobolev filter, which agrees only for ``s = 0``). The expectations are running means over
    every real sample passed to :meth:`estimate` in training mode, including the current
    batch. In eval mode, or after :meth:`calibrate` with ``freeze=True``, the stored means
    are used unchanged (an eval call before any training batch uses the batch's own mean).

    State (in ``state_dict``): buffers ``means`` ``[2]`` (means of ``||X||_B`` and
    ``||X||_{B*}``) and ``count`` (samples seen, int64), and ``frozen`` as extra state. A
    state dict with other shapes, means that are NaN, inf or negative, a count that is
    negative or not an integer, or a malformed extra state is rejected before anything is
    loaded.

    Args:
        lam: ``"auto"`` or a fixed ``lam >= 0``.
        gamma: ``"auto"`` or a fixed ``gamma > 0``.
    """

    means: Tensor
    count: Tensor

    def __init__(self, lam: Setting = 10.0, gamma: Setting = 1.0) -> None:
        super().__init__()
        self.lam_setting = _setting(lam, "lam", open_low=False)
        self.gamma_setting = _setting(gamma, "gamma", open_low=True)
        self.register_buffer("means", torch.zeros(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.frozen = False

    @property
    def auto(self) -> bool:
        """Whether lam or gamma is estimated from data."""
        return "auto" in (self.lam_setting, self.gamma_setting)

    def _sums(self, real: Tensor, norm: Norm) -> Tensor:
        """``[sum_b ||x_b||_B, sum_b ||x_b||_{B*}, B]``, the entries that are needed, detached."""
        with torch.no_grad():
            zero = real.new_zeros((), dtype=torch.float32)
            primal = norm.norm(real).sum() if self.lam_setting == "auto" else zero
            dual = norm.dual(real).sum() if self.gamma_setting == "auto" else zero
            return torch.stack([primal.float(), dual.float(), zero + real.shape[0]])

    def _resolve(self, means: Tensor, count: Tensor, learned: bool = False) -> Estimate:
        lam = means[0] if self.lam_setting == "auto" else self.lam_setting
        gamma = means[1] if self.gamma_setting == "auto" else self.gamma_setting
        return Estimate(lam=lam, gamma=gamma, means=means, count=count, learned=learned)

    def estimate(self, real: Tensor, norm: Norm) -> Estimate:
        """lam and gamma for a call on ``real`` ``[B, ...]``, without changing any buffer.

        In training mode (and not frozen) the returned running means include ``real``;
        :meth:`commit` stores them once the call has succeeded. The estimate is computed on
        ``real``'s device from copies of the buffers, which stay where they are until then.
        """
        means, count = self.means.to(real.device), self.count.to(real.device)
        if not self.auto or self.frozen:
            return self._resolve(means, count)
        sums = self._sums(real, norm)
        if not self.training:
            # Stored means when there are any, else this batch's (no host synchronisation).
            stored = torch.where(count > 0, means, sums[:2] / sums[2])
            return self._resolve(stored, count)
        sums = _all_reduce_sum(sums)
        batch_means, batch_count = sums[:2] / sums[2], sums[2].to(torch.int64)
        total = count + batch_count
        # Incremental form of the mean: stable in float32 over millions of samples.
        means = means + (batch_means - means) * (batch_count / total)
        return self._resolve(means, total, learned=True)

    def commit(self, estimate: Estimate) -> None:
        """After a successful call: move the buffers to the call's device (the module follows
        its inputs) and store the running means if they were learned.

        Means that are not finite are not stored (without a host synchronisation): a batch
        with NaN or inf that a GradScaler skips must not poison the estimates for good.
        """
        device = estimate.means.device
        if self.means.device != device:
            self.to(device)
        if not estimate.learned:
            return
        finite = torch.isfinite(estimate.means).all()
        self.means.copy_(torch.where(finite, estimate.means, self.means))
        self.count.copy_(torch.where(finite, estimate.count, self.count))

    def calibrate(
        self,
        batches: Iterable[Any],
        norm: Norm,
        *,
        max_batches: int | None = None,
        freeze: bool = True,
    ) -> None:
        """Set the estimates to the means over ``batches`` (across all processes) in one go.

        Buffers change only after every batch has been read and checked. With ``freeze`` the
        estimates stay fixed afterwards; otherwise training keeps refining them.
        """
        if not self.auto:
            raise ValueError("calibrate() needs lam='auto' or gamma='auto'; both are fixed here")
        check_int(max_batches, "max_batches", 1, none_ok=True)
        check_bool(freeze, "freeze")
        totals: Tensor | None = None
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            real = check_batch(first_tensor(batch, "calibrate()"), "batch")
            norm.check(real, "batch")
            sums = self._sums(real, norm).to(self.means.device)
            totals = sums if totals is None else totals + sums
        if totals is None:
            raise ValueError(
                "calibrate() got no batches: pass a non-empty iterable of real batches"
            )
        totals = _all_reduce_sum(totals)
        means = totals[:2] / totals[2]
        if not bool(torch.isfinite(means).all()):
            raise ValueError(
                "calibrate(): the real data have non-finite norms (NaN or inf in the batches)"
            )
        self.means.copy_(means)
        self.count.fill_(int(totals[2]))
        self.frozen = freeze

    def get_extra_state(self) -> dict[str, bool]:
        return {"frozen": self.frozen}

    def set_extra_state(self, state: Any) -> None:
        self.frozen = bool(state["frozen"])

    def _state_problems(self, state_dict: dict[str, Any], prefix: str) -> list[str]:
        problems = [
            f"{prefix}{name}: expected a tensor of shape {list(buf.shape)}"
            for name, buf in self.named_buffers(recurse=False)
            if prefix + name in state_dict
            and not (
                isinstance(state_dict[prefix + name], Tensor)
                and state_dict[prefix + name].shape == buf.shape
            )
        ]
        if problems:
            return problems
        means, count = state_dict.get(prefix + "means"), state_dict.get(prefix + "count")
        if means is not None and not (
            means.is_floating_point() and bool((means.isfinite() & (means >= 0)).all())
        ):
            problems.append(
                f"{prefix}means: expected finite non-negative means of ||X||_B and ||X||_B*, "
                f"got {means.tolist()}"
            )
        integer = count is not None and not (count.is_floating_point() or count.is_complex())
        if count is not None and not (integer and count.dtype != torch.bool and int(count) >= 0):
            problems.append(
                f"{prefix}count: expected a non-negative integer count of samples, got {count!r}"
            )
        extra = state_dict.get(prefix + "_extra_state", {"frozen": False})
        if not (isinstance(extra, dict) and isinstance(extra.get("frozen"), bool)):
            problems.append(f"{prefix}_extra_state: expected {{'frozen': bool}}, got {extra!r}")
        return problems

    def extra_repr(self) -> str:
        return f"lam={self.lam_setting!r}, gamma={self.gamma_setting!r}"
