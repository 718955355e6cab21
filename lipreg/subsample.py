"""A penalty evaluated on a random fraction of each batch."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from lipreg._validation import check_critic
from lipreg.derivative import Critic
from lipreg.penalty import check_pair


class Subsampled(nn.Module):
    """``penalty`` evaluated on a random subset of ``k = max(1, round(fraction * B))`` of the
    ``B`` samples of each call (StyleGAN2's ``pl_batch_shrink`` idea, for any penalty).

    Every lipreg penalty is a mean over its evaluation points, so on exchangeable batches the
    subset's value is an unbiased estimate of the whole batch's, at about ``k / B`` of the
    penalty's cost (the double backward runs on ``k`` points). Each call draws the subset
    with ``torch.randperm(B)`` from torch's global random state on ``real``'s device, so a
    seeded run draws the same subsets, and a trainer that checkpoints the random state resumes
    them exactly. The same rows are taken from ``real``, ``fake`` and from every keyword
    argument that is a tensor with ``B`` rows (class labels of a conditional critic, the
    ``d_real`` / ``d_fake`` scores of :class:`lipreg.FiniteDifferenceGP`); other keyword
    arguments pass unchanged. A ``fake`` batch of another size (R2 on its own batch) is
    subsampled by its own draw. ``fraction=1`` calls the penalty on the whole batch and draws
    nothing.

    What sees the subset only: the wrapped penalty's statistics and its ``"auto"`` running
    estimates of lam and gamma (unbiased, from fewer samples per call), and the batch
    statistics some samplers take (DRAGAN's perturbation scale is the standard deviation of
    the subset). Combine with :class:`lipreg.Lazy` as ``Lazy(Subsampled(penalty, 0.25), 8)``.

    Args:
        penalty: any lipreg penalty module called as
            ``penalty(critic, real, fake, **critic_kwargs)``.
        fraction: the share of each batch in ``(0, 1]``.
    """

    def __init__(self, penalty: nn.Module, fraction: float) -> None:
        super().__init__()
        if not isinstance(penalty, nn.Module) or not callable(penalty):
            raise TypeError(
                "penalty must be a lipreg penalty module such as BanachGP() or BanachR1(), "
                f"got {type(penalty).__name__}"
            )
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not (0 < fraction <= 1)
        ):
            raise ValueError(
                f"fraction must be a number in (0, 1], the share of each batch the penalty "
                f"sees, got fraction={fraction!r}"
            )
        self.penalty = penalty
        self.fraction = float(fraction)

    @property
    def stats(self) -> Any:
        """The wrapped penalty's statistics of its last call (on the subset)."""
        return getattr(self.penalty, "stats", None)

    def size(self, batch: int) -> int:
        """The subset's size ``k = max(1, round(fraction * batch))`` for a batch of ``batch``
        (halves round up)."""
        return max(1, min(batch, math.floor(self.fraction * batch + 0.5)))

    def forward(
        self, critic: Critic, real: Tensor, fake: Tensor | None = None, **critic_kwargs: Any
    ) -> Tensor:
        """``penalty(critic, real[i], fake[i], **kwargs[i])`` for a random index set ``i`` of
        :meth:`size` rows (see the class docstring)."""
        check_critic(critic)
        check_pair(real, fake)
        batch = real.shape[0]
        k = self.size(batch)
        if k == batch and (fake is None or self.size(fake.shape[0]) == fake.shape[0]):
            value: Tensor = self.penalty(critic, real, fake, **critic_kwargs)
            return value
        index = torch.randperm(batch, device=real.device)[:k]

        def rows(value: Any) -> Any:
            is_rows = isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == batch
            return value[index] if is_rows else value

        if fake is not None and fake.shape[0] != batch:  # e.g. R2 on a batch of another size
            fake = fake[torch.randperm(fake.shape[0], device=fake.device)[: self.size(len(fake))]]
        kwargs = {name: rows(value) for name, value in critic_kwargs.items()}
        value = self.penalty(critic, real[index], rows(fake), **kwargs)
        return value

    def extra_repr(self) -> str:
        return f"fraction={self.fraction:g}"
